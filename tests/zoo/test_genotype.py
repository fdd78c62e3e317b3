"""The genotype contract: validation messages, canonical JSON, arch_hash, DARTS import/export."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from nasseg import zoo
from nasseg.zoo.genotype import Genotype, json_schema
from nasseg.zoo.registry import SHIPPED_DATA_FILES

GENOTYPE_DIR = Path(__file__).resolve().parents[2] / "genotypes"
SHIPPED = sorted(p for p in GENOTYPE_DIR.glob("*.json") if p.name not in SHIPPED_DATA_FILES)

DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def cellnet_dict(**arch) -> dict:
    base = {
        "name": "t",
        "family": "cellnet",
        "task": {"kind": "classification", "num_classes": 10, "input_size": [32, 32]},
        "arch": {
            "normal": {
                "nodes": [
                    [["sep_conv_3x3", 0], ["skip_connect", 1]],
                    [["dil_conv_3x3", 2], ["max_pool_3x3", 0]],
                ],
                "concat": [2, 3],
            },
            "init_channels": 8,
            "layers": 3,
        },
    }
    base["arch"].update(arch)
    return base


def error_of(data: dict) -> str:
    with pytest.raises(zoo.GenotypeError) as info:
        Genotype.from_dict(data, source="case.json")
    message = str(info.value)
    assert "\n" not in message and message.startswith("case.json: ")
    return message


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_files_are_canonical(path: Path) -> None:
    genotype = Genotype.from_json(path)
    assert genotype.name == path.stem
    assert genotype.to_json() == path.read_text()
    assert Genotype.from_dict(json.loads(genotype.to_json())) == genotype


def test_schema_json_is_generated_from_the_models() -> None:
    assert json.loads((GENOTYPE_DIR / "schema.json").read_text()) == json.loads(json.dumps(json_schema()))


def test_canonical_json_keeps_ints_and_sorts_keys() -> None:
    data = cellnet_dict(init_channels=8.0)
    text = Genotype.from_dict(data).to_json()
    assert '"init_channels": 8,' in text
    keys = list(json.loads(text))
    assert keys == sorted(keys)


def test_to_json_writes_file(tmp_path: Path) -> None:
    genotype = Genotype.from_dict(cellnet_dict())
    genotype.to_json(tmp_path / "g.json")
    loaded = Genotype.from_json(tmp_path / "g.json")
    assert loaded == genotype and loaded.source == (tmp_path / "g.json").resolve()


def test_arch_hash_same_net_same_hash() -> None:
    a = Genotype.from_dict(cellnet_dict())
    renamed = cellnet_dict()
    renamed["name"] = "other"
    renamed["provenance"] = {"searcher": "x", "seed": 3}
    assert Genotype.from_dict(renamed).arch_hash == a.arch_hash
    explicit_defaults = cellnet_dict(stem="cifar", stem_multiplier=3, head={"type": "classifier"})
    assert Genotype.from_dict(explicit_defaults).arch_hash == a.arch_hash
    # "loose" resolves to the nodes nothing consumes: here node 3 only.
    loose = cellnet_dict()
    loose["arch"]["normal"]["concat"] = "loose"
    tight = cellnet_dict()
    tight["arch"]["normal"]["concat"] = [3]
    assert Genotype.from_dict(loose).arch_hash == Genotype.from_dict(tight).arch_hash
    # the nominal input size does not change a cellnet's modules
    resized = cellnet_dict()
    resized["task"]["input_size"] = [64, 64]
    assert Genotype.from_dict(resized).arch_hash == a.arch_hash


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["arch"]["normal"]["nodes"][0][0].__setitem__(0, "sep_conv_5x5"),
        lambda d: d["arch"]["normal"]["nodes"][1][0].__setitem__(1, 1),
        lambda d: d["arch"]["normal"].__setitem__("concat", [3]),
        lambda d: d["arch"]["normal"].__setitem__("residual", True),
        lambda d: d["arch"].__setitem__("init_channels", 16),
        lambda d: d["arch"].__setitem__("layers", 4),
        lambda d: d["task"].__setitem__("num_classes", 3),
        lambda d: d["task"].__setitem__("in_channels", 1),
    ],
)
def test_arch_hash_changes_with_architecture(change) -> None:
    data = cellnet_dict()
    before = Genotype.from_dict(data).arch_hash
    changed = copy.deepcopy(data)
    change(changed)
    assert Genotype.from_dict(changed).arch_hash != before


def test_unknown_op_suggests() -> None:
    data = cellnet_dict()
    data["arch"]["normal"]["nodes"][0][0][0] = "sep_conv_3x4"
    message = error_of(data)
    assert "arch.normal.nodes" in message and "unknown op 'sep_conv_3x4'" in message and "sep_conv_3x3" in message


@pytest.mark.parametrize(
    ("source", "expected"),
    [(2, "node 2 consumes itself"), (5, "node 2 consumes the later node 5"), (-1, "out of range")],
)
def test_bad_input_index(source: int, expected: str) -> None:
    data = cellnet_dict()
    data["arch"]["normal"]["nodes"][0][1][1] = source
    assert expected in error_of(data)


def test_concat_naming_missing_node() -> None:
    data = cellnet_dict()
    data["arch"]["normal"]["concat"] = [2, 7]
    assert "concat names node 7, but the cell has nodes 2..3" in error_of(data)


def test_fields_of_another_family() -> None:
    data = cellnet_dict(channels=[8, 16])
    message = error_of(data)
    assert "arch.channels" in message and "field of family unet" in message


def test_unknown_schema_version_and_family() -> None:
    data = cellnet_dict()
    data["schema"] = "nasseg.genotype/9"
    assert "unknown schema version 'nasseg.genotype/9'" in error_of(data)
    data = cellnet_dict()
    data["family"] = "celnet"
    assert "did you mean 'cellnet'" in error_of(data)


def test_unet_skip_count_and_missing_fields() -> None:
    data = {
        "name": "u",
        "family": "unet",
        "task": {"kind": "translation"},
        "arch": {"channels": [8, 16, 32], "skips": [True]},
    }
    assert "skips has 1 bits, but 3 encoder levels need 2" in error_of(data)
    del data["arch"]["skips"]
    assert "arch.skips: Field required" in error_of(data)


def test_bad_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",\n  "family": }')
    with pytest.raises(zoo.GenotypeError, match=r"broken.json: line 2 column 13: invalid JSON"):
        Genotype.from_json(broken)
    with pytest.raises(zoo.GenotypeError, match="no such genotype file"):
        Genotype.from_json(tmp_path / "missing.json")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(zoo.GenotypeError):
        Genotype.from_json(binary)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(zoo.GenotypeError, match="must be a JSON object"):
        Genotype.from_json(listing)


def test_darts_import_is_lossless() -> None:
    genotype = Genotype.from_darts(DARTS_V2, name="d", init_channels=36, layers=20)
    assert genotype.arch.normal.nodes[3] == [("skip_connect", 0), ("dil_conv_3x3", 2)]
    assert genotype.arch.reduce.concat == [2, 3, 4, 5]
    ranged = DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    assert Genotype.from_darts(ranged, name="d", init_channels=36, layers=20) == genotype
    exported = genotype.to_darts()
    assert Genotype.from_darts(exported, name="d", init_channels=36, layers=20) == genotype
    assert Genotype.from_darts(f"DARTS_V2 = {DARTS_V2}", name="d", init_channels=36, layers=20) == genotype


def test_darts_import_nested_and_without_reduce() -> None:
    nested = (
        "Genotype(normal=[[('sep_conv_3x3', 1), ('skip_connect', 0)], [('sep_conv_3x3', 0), ('dil_conv_3x3', 2)]], "
        "normal_concat=range(2, 4))"
    )
    genotype = Genotype.from_darts(nested, name="n")
    assert genotype.arch.reduce is None and genotype.arch.normal.steps == 2
    base = {"model": "iac-base-resnet18", "arch_hash": "0123456789abcdef"}
    iac = Genotype.from_darts(nested, family="iac-unet", name="i", base=base, levels=[1, 2])
    assert iac.arch.cell == genotype.arch.normal


@pytest.mark.parametrize(
    "text",
    [
        "Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2])",  # odd flat list
        "Genotype(normal=__import__('os').system('true'))",
        "Genotype(normal=[('sep_conv_3x3', 0), ('bogus_op', 1)])",
        "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2, 9])",
        "Genotype(weird=[])",
        "not python at all (",
        "",
    ],
)
def test_darts_import_rejects_bad_text(text: str) -> None:
    with pytest.raises(zoo.GenotypeError):
        Genotype.from_darts(text)


def test_replace_revalidates() -> None:
    genotype = Genotype.from_dict(cellnet_dict())
    assert genotype.replace(name="renamed").name == "renamed"
    with pytest.raises(zoo.GenotypeError):
        genotype.replace(task={"kind": "classification", "num_classes": 0})


def test_odd_keys_keep_the_message_on_one_line() -> None:
    data = cellnet_dict()
    data["\n"] = 1
    data["arch"]["a b"] = 2
    message = error_of(data)
    assert "['\\n']: unknown field" in message and "arch['a b']" in message
