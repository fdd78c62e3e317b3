"""Every registered model exports and passes the PyTorch/ONNX Runtime check, or is listed in
``serving.NOT_EXPORTABLE`` with a reason that this test reproduces (slow: ``pytest -m slow``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nasseg import zoo
from nasseg.serving import NOT_EXPORTABLE, ExportError, check, export
from nasseg.serving.check import default_sizes


def test_not_exportable_names_are_registered() -> None:
    assert set(NOT_EXPORTABLE) <= set(zoo.list_models())


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.list_models())
def test_model_exports_and_checks(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = zoo.create_model(name).eval()
    graph = "deploy" if model.genotype.task.kind == "segmentation" else "raw"
    if name in NOT_EXPORTABLE:
        with pytest.raises(ExportError, match="ONNX export failed"):
            export(model, tmp_path / f"{name}.onnx", graph=graph)
        return
    result = export(model, tmp_path / f"{name}.onnx", graph=graph)
    report = check(result.path, model, sizes=default_sizes(model.divisor)[:2])
    dynamic = result.metadata.dynamic_hw
    print(f"{name}: {graph}, dynamic H/W {dynamic}, export {result.seconds:.1f} s; {report.summary()}")
    report.raise_for_failure()
