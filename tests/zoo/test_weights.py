"""Weight files: round trip, lookup in NASSEG_HOME, refusal of another architecture's weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nasseg import zoo
from nasseg.zoo.weights import read_arch_hash


def small_genotype(name: str = "tiny", layers: int = 3) -> zoo.Genotype:
    return zoo.apply_overrides(zoo.get_genotype("darts-v2-cifar"), {"init_channels": 4, "layers": layers}).replace(
        name=name
    )


def test_weights_round_trip_next_to_the_genotype(tmp_path: Path) -> None:
    genotype = small_genotype()
    model = zoo.build_model(genotype).eval()
    entry = zoo.save_weights(model, genotype, tmp_path / "tiny.safetensors")
    assert entry.arch_hash == genotype.arch_hash == read_arch_hash(tmp_path / "tiny.safetensors")
    genotype.replace(weights=entry).to_json(tmp_path / "tiny.json")
    loaded = zoo.create_model(tmp_path / "tiny.json", pretrained=True).eval()
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.pretrained


def test_weight_files_do_not_depend_on_the_header_order_safetensors_picked(tmp_path: Path) -> None:
    """safetensors writes its metadata map in a per-process hash order; the file is canonical."""
    from safetensors.torch import load, save

    from nasseg.zoo.weights import canonical_safetensors

    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(5, dtype=torch.float16)}
    blob = save(tensors, metadata={"z": "1", "m": "\u00e9t\u00e9", "a": "3"})
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + length])
    reordered = dict(reversed(header.items())) | {"__metadata__": dict(reversed(header["__metadata__"].items()))}
    shuffled = json.dumps(reordered)
    shuffled_bytes = shuffled.encode() + b" " * (-len(shuffled) % 8)
    other = len(shuffled_bytes).to_bytes(8, "little") + shuffled_bytes + blob[8 + length :]
    assert other != blob
    assert canonical_safetensors(other) == canonical_safetensors(blob)
    restored = load(canonical_safetensors(other))
    assert restored.keys() == tensors.keys() and all(torch.equal(restored[k], tensors[k]) for k in tensors)
    genotype = small_genotype()
    model = zoo.build_model(genotype)
    first = zoo.save_weights(model, genotype, tmp_path / "one.safetensors")
    second = zoo.save_weights(model, genotype, tmp_path / "two.safetensors")
    assert first.sha256 == second.sha256


def test_weights_found_in_nasseg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASSEG_HOME", str(tmp_path / "home"))
    genotype = small_genotype()
    entry = zoo.save_weights(zoo.build_model(genotype), genotype, tmp_path / "home" / "weights" / "tiny.safetensors")
    with_weights = genotype.replace(weights=entry)
    model = zoo.build_model(with_weights)
    assert zoo.load_weights(model, with_weights) == tmp_path / "home" / "weights" / "tiny.safetensors"


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    other = small_genotype(layers=4)
    zoo.save_weights(zoo.build_model(other), other, tmp_path / "other.safetensors")
    genotype = small_genotype()
    entry = {"file": "other.safetensors", "arch_hash": genotype.arch_hash}
    genotype.replace(weights=entry).to_json(tmp_path / "tiny.json")
    with pytest.raises(zoo.WeightsError, match=r"weights are for architecture [0-9a-f]{16}, but model 'tiny'"):
        zoo.create_model(tmp_path / "tiny.json", pretrained=True)


def test_missing_corrupt_and_absent_weights(tmp_path: Path) -> None:
    genotype = small_genotype()
    with pytest.raises(zoo.WeightsError, match="has no weights"):
        zoo.create_model(genotype, pretrained=True)
    missing = genotype.replace(weights={"file": "nowhere.safetensors", "arch_hash": genotype.arch_hash})
    with pytest.raises(zoo.WeightsError, match="'nowhere.safetensors' not found"):
        zoo.create_model(missing, pretrained=True)
    entry = zoo.save_weights(zoo.build_model(genotype), genotype, tmp_path / "tiny.safetensors")
    genotype.replace(weights=entry).to_json(tmp_path / "tiny.json")
    with open(tmp_path / "tiny.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(zoo.WeightsError, match="sha256 differs"):
        zoo.create_model(tmp_path / "tiny.json", pretrained=True)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(zoo.WeightsError, match="not a readable safetensors file"):
        read_arch_hash(tmp_path / "junk.safetensors")


def test_a_stray_json_in_the_user_genotype_folder_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's metrics.json copied next to its genotype must not break `nasseg list` or the registry."""
    from typer.testing import CliRunner

    from nasseg.cli import app

    monkeypatch.setenv("NASSEG_HOME", str(tmp_path))
    folder = tmp_path / "genotypes"
    folder.mkdir()
    mine = zoo.get_genotype("unet-small").replace(name="my-unet")
    mine.to_json(folder / "my-unet.json")
    (folder / "metrics.json").write_text('{"test": {"iou": 0.5}}')
    (folder / "broken.json").write_text("{not json")
    with pytest.warns(UserWarning, match="not a genotype") as caught:
        names = zoo.list_models()
    assert "my-unet" in names and "metrics" not in names and "broken" not in names
    assert len([w for w in caught if "not a genotype" in str(w.message)]) == 2  # one line per stray file
    zoo.list_models()  # warned once, not on every lookup
    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    assert "my-unet" in {row["name"] for row in json.loads(result.stdout)}


def test_register_a_trained_run_then_build_it_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from nasseg.cli import app

    monkeypatch.setenv("NASSEG_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(3)
    model = zoo.create_model("unet-small")
    genotype = model.genotype
    weights = zoo.save_weights(model, genotype, run / "unet-small.safetensors")
    genotype.replace(weights=weights).to_json(run / "unet-small.json")
    (run / "metrics.json").write_text("{}")  # a run folder holds other JSON too
    runner = CliRunner()
    result = runner.invoke(app, ["register", str(run), "--name", "my-unet"])
    assert result.exit_code == 0, result.output
    loaded = zoo.create_model("my-unet", pretrained=True)
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )
    again = runner.invoke(app, ["register", str(run), "--name", "my-unet"])
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(app, ["register", str(run), "--name", "my-unet", "--force"]).exit_code == 0
    refused = runner.invoke(app, ["register", str(run / "unet-small.json")])
    assert refused.exit_code == 2 and "shipped model" in refused.output and "--name" in refused.output
    shadow = runner.invoke(app, ["register", str(run / "unet-small.json"), "--force"])
    assert shadow.exit_code == 0 and "shadows it" in " ".join(shadow.output.split())
    with pytest.warns(UserWarning, match="shadows the shipped model 'unet-small'"):
        mine = zoo.create_model("unet-small", pretrained=True)
    assert torch.equal(next(iter(mine.state_dict().values())), next(iter(model.state_dict().values())))
