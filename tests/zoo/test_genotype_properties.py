"""Property tests: random valid genotypes build and run at two sizes; corrupted ones only ever
raise GenotypeError."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasseg import zoo
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.ops import OP_NAMES

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHIPPED = [json.loads(p.read_text()) for p in sorted((Path(__file__).parents[2] / "genotypes").glob("*-*.json"))]


@st.composite
def cells(draw, max_steps: int = 4) -> dict:
    steps = draw(st.integers(1, max_steps))
    nodes = []
    for node in range(2, steps + 2):
        edges = draw(st.lists(st.tuples(st.sampled_from(OP_NAMES), st.integers(0, node - 1)), min_size=1, max_size=3))
        nodes.append([list(edge) for edge in edges])
    if draw(st.booleans()):
        concat = "loose"
    else:
        concat = draw(st.lists(st.integers(2, steps + 1), min_size=1, max_size=steps, unique=True))
    return {"nodes": nodes, "concat": concat, "residual": draw(st.booleans())}


@st.composite
def cellnet_genotypes(draw) -> Genotype:
    normal = draw(cells())
    reduce = draw(st.one_of(st.none(), cells()))
    arch = {
        "normal": normal,
        "init_channels": draw(st.integers(2, 6)),
        "layers": draw(st.integers(1, 5)),
        "stem": draw(st.sampled_from(["cifar", "imagenet"])),
        "head": {"type": "classifier", "auxiliary": draw(st.booleans())},
    }
    if reduce is not None:
        arch["reduce"] = reduce
    task = {
        "kind": "classification",
        "in_channels": draw(st.integers(1, 3)),
        "num_classes": draw(st.integers(1, 4)),
    }
    return Genotype.from_dict({"name": "random", "family": "cellnet", "task": task, "arch": arch})


@st.composite
def unet_genotypes(draw) -> Genotype:
    levels = draw(st.integers(2, 4))
    arch = {
        "channels": draw(st.lists(st.sampled_from([2, 4, 8]), min_size=levels, max_size=levels)),
        "skips": draw(st.lists(st.booleans(), min_size=levels - 1, max_size=levels - 1)),
        "norm": draw(st.sampled_from(["batch", "instance", "none"])),
        "dropout": draw(st.sampled_from([0.0, 0.5])),
        "dropout_layers": draw(st.integers(0, 3)),
    }
    kind = draw(st.sampled_from(["segmentation", "translation"]))
    return Genotype.from_dict(
        {
            "name": "random-unet",
            "family": "unet",
            "task": {"kind": kind, "in_channels": 3, "num_classes": 2},
            "arch": arch,
        }
    )


def run_at(model: torch.nn.Module, in_channels: int, side: int) -> torch.Tensor:
    output = model(torch.randn(2, in_channels, side, side))
    return output[0] if isinstance(output, tuple) else output


@SETTINGS
@given(cellnet_genotypes())
def test_random_cellnets_build_and_run_at_two_sizes(genotype: Genotype) -> None:
    model = zoo.build_model(genotype)
    assert Genotype.from_dict(json.loads(genotype.to_json())).arch_hash == genotype.arch_hash
    # DARTS' auxiliary head needs an 8x8 (CIFAR) / 7x7 (ImageNet) map after the last reduction
    aux = genotype.arch.head.auxiliary
    if genotype.arch.stem == "imagenet":
        sides = (224, 240) if aux else (64, 72)
    else:
        sides = (32, 40) if aux else (20, 33)
    for side in sides:
        model.train()
        assert run_at(model, genotype.task.in_channels, side).shape == (2, genotype.task.num_classes)
        model.eval()
        with torch.no_grad():
            assert run_at(model, genotype.task.in_channels, side).shape == (2, genotype.task.num_classes)


@SETTINGS
@given(unet_genotypes())
def test_random_unets_build_and_run_at_two_sizes(genotype: Genotype) -> None:
    model = zoo.build_model(genotype)
    for side in (model.divisor * 2, model.divisor * 3):
        out = run_at(model, 3, side)
        assert out.shape == (2, 2, side, side)
        if genotype.task.kind == "translation":
            assert out.abs().max() <= 1.0


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(OP_NAMES),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


def paths_of(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths_of(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths_of(child, (*prefix, index))


@st.composite
def corrupted(draw) -> object:
    data = copy.deepcopy(draw(st.sampled_from(SHIPPED)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in paths_of(data) if p]
        if not paths or not isinstance(data, dict):
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(JSON_VALUES)
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return data


@settings(max_examples=300, deadline=None)
@given(corrupted())
def test_corrupted_genotypes_raise_only_genotype_error(data) -> None:
    try:
        genotype = Genotype.from_dict(data)
    except zoo.GenotypeError as exc:
        assert "\n" not in str(exc)
        return
    assert len(genotype.arch_hash) == 16  # a document that validates must also hash and serialise
    genotype.to_json()


@settings(max_examples=100, deadline=None)
@given(st.one_of(JSON_VALUES, st.text(max_size=40)))
def test_arbitrary_documents_raise_only_genotype_error(data) -> None:
    try:
        Genotype.from_dict(data)
    except zoo.GenotypeError:
        pass
    try:
        Genotype.from_json("{" + str(data))
    except zoo.GenotypeError:
        pass


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda edges, concat: f"Genotype(normal={edges!r}, normal_concat={concat})",
            st.lists(st.tuples(st.sampled_from([*OP_NAMES, "bogus"]), st.integers(-2, 6)), max_size=6),
            st.sampled_from(["range(2, 4)", "[2, 3]", "[0]", "range(9)", "'x'", "[]"]),
        ),
    )
)
def test_arbitrary_darts_text_raises_only_genotype_error(text: str) -> None:
    try:
        Genotype.from_darts(text)
    except zoo.GenotypeError as exc:
        assert "\n" not in str(exc)
