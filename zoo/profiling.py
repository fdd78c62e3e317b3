"""Cost profile of a model: parameters, MACs/FLOPs, elementwise work and peak activation memory.

Convention (fvcore's): MACs count only the multiply-accumulates of convolutions, transposed
convolutions, linear layers and matmuls (mm/addmm/bmm/baddbmm/mv/dot and the two matmuls of
scaled-dot-product attention), exactly, biases excluded.  A convolution costs
batch * prod(out_spatial) * C_out * (C_in/groups) * prod(kernel); a transposed convolution
costs batch * prod(in_spatial) * C_in * (C_out/groups) * prod(kernel).  FLOPs = 2 x MACs.
Elementwise work (pointwise ops, norms, softmax and resizes: output elements; pooling and
reductions: input elements read) is reported in its own column and never mixed into MACs.

The counter is a ``TorchDispatchMode``: it sees every aten op that the forward runs, so work
done with functional calls (``F.conv2d``, ``torch.matmul``, ``x * y``) inside ``forward`` is
counted too, which module-hook counters miss.  Module hooks only attribute the work to the
innermost module executing.
"""

from __future__ import annotations

import math
import re
import weakref
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from nasseg.zoo.errors import InputSizeError, NassegError

__all__ = ["CONVENTION", "LayerRow", "ModelProfile", "profile"]

CONVENTION = (
    "MACs count conv, transposed conv, linear and matmul multiply-accumulates exactly (biases excluded, "
    "fvcore convention); FLOPs = 2 x MACs; elementwise work (pointwise ops, norms, pooling, resizes) "
    "is counted separately in elementwise_ops."
)

_CONV = set(
    "convolution _convolution convolution_overrideable _slow_conv2d_forward cudnn_convolution "
    "mkldnn_convolution miopen_convolution miopen_depthwise_convolution _conv_depthwise2d slow_conv3d_forward"
    " slow_conv_dilated2d slow_conv_dilated3d cudnn_convolution_transpose miopen_convolution_transpose"
    " slow_conv_transpose2d slow_conv_transpose3d".split()
)
_TRANSPOSED_FLAG = {"convolution", "_convolution", "convolution_overrideable"}  # args[6] says transposed
# matmul-like op -> index of its (first) matrix argument; MACs = output elements * its last dim
_MATMUL = {"mm": 0, "bmm": 0, "mv": 0, "dot": 0, "vdot": 0, "addmm": 1, "baddbmm": 1, "addmv": 1}
_NORMS = ("batch_norm", "group_norm", "layer_norm", "instance_norm", "rms_norm")
_REDUCE = {
    "mean",
    "sum",
    "amax",
    "amin",
    "max",
    "min",
    "prod",
    "var",
    "std",
    "var_mean",
    "std_mean",
    "logsumexp",
    "linalg_vector_norm",
    "norm",
    "argmax",
    "argmin",
}
_NOT_WORK = {"clone", "positive"}  # tagged pointwise but pure data movement
_SIZE_ERROR = re.compile(r"size|shape|more than 1 value|spatial element", re.IGNORECASE)


@dataclass(frozen=True)
class LayerRow:
    """Work attributed directly to one module (children excluded), accumulated over its calls."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    elementwise_ops: int
    activation_bytes: int


@dataclass(frozen=True)
class ModelProfile:
    """Result of :func:`profile`; see the module docstring (and ``convention``) for what is counted."""

    input_size: tuple[int, ...]
    params_total: int
    params_trainable: int
    params_auxiliary: int
    param_bytes: int
    macs: int
    flops: int
    elementwise_ops: int
    peak_activation_bytes: int
    output_shapes: list[tuple[int, ...]]
    layers: list[LayerRow]
    convention: str = CONVENTION

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (shapes become lists, layers become dicts)."""
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["output_shapes"] = [list(s) for s in self.output_shapes]
        d["layers"] = [{**asdict(r), "output_shape": list(r.output_shape)} for r in self.layers]
        return d

    def summary(self) -> str:
        """A few lines of human-readable totals."""
        return "\n".join(
            [
                f"input {self.input_size} -> outputs {', '.join(str(s) for s in self.output_shapes)}",
                f"params {self.params_total:,} (trainable {self.params_trainable:,}, auxiliary "
                f"{self.params_auxiliary:,}), {_human(self.param_bytes, 'B')}",
                f"MACs {_human(self.macs)}, FLOPs {_human(self.flops)}, elementwise ops {_human(self.elementwise_ops)}",
                f"peak activations {_human(self.peak_activation_bytes, 'B')} over {len(self.layers)} layer rows",
            ]
        )


def _human(n: float, suffix: str = "") -> str:
    """1234567 -> '1.23 M' (``suffix`` appended: '1.23 MB')."""
    exp = min(int(math.log10(abs(n))) // 3, 4) if abs(n) >= 1000 else 0
    return f"{n:.0f} {suffix}".rstrip() if exp == 0 else f"{n / 1000**exp:.2f} {'KMGT'[exp - 1]}{suffix}"


def _op_cost(func: Any, args: tuple, out: Any) -> tuple[int, int]:
    """(macs, elementwise_ops) of one aten op call, by the module's convention."""
    name = func.overloadpacket.__name__
    if "backward" in name:
        return 0, 0
    outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    first = outs[0].numel() if outs else 0
    if name in _CONV:
        x, w = args[0], args[1]
        transposed = bool(args[6]) if name in _TRANSPOSED_FLAG else "transpose" in name
        return (x.numel() if transposed else first) * math.prod(w.shape[1:]), 0
    if name in _MATMUL:
        return first * args[_MATMUL[name]].shape[-1], 0
    if name.startswith("_scaled_dot_product"):  # (batch..., seq_q, d) @ (.., seq_k, d)^T, then @ v
        q, k, v = args[:3]
        return math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1]), 0
    if name in _NOT_WORK:
        return 0, 0
    if (
        torch.Tag.pointwise in func.tags
        or any(n in name for n in _NORMS)
        or "softmax" in name
        or name.startswith(("upsample", "_upsample", "grid_sampler"))
    ):
        return 0, first
    if "pool" in name or name in _REDUCE:
        return 0, args[0].numel() if args and isinstance(args[0], torch.Tensor) else 0
    return 0, 0


def _storage_key(t: torch.Tensor) -> tuple[int, str] | None:
    try:
        storage = t.untyped_storage()
        # meta storages have no addresses: tell them apart by their StorageImpl
        return (storage._cdata if t.device.type == "meta" else storage.data_ptr()), str(t.device)
    except (RuntimeError, NotImplementedError):  # sparse, nested, ... tensors have no plain storage
        return None


class _Counter(TorchDispatchMode):
    """Counts work per innermost module and tracks live activation storages."""

    def __init__(self, excluded: set[tuple[int, str]]) -> None:
        super().__init__()
        self.stack: list[str] = [""]
        self.macs: Counter[str] = Counter()
        self.ew: Counter[str] = Counter()
        self.excluded = excluded
        self.live: dict[tuple[int, str], list[int]] = {}  # storage key -> [tensor refs, nbytes]
        self.current = self.peak = 0

    def track(self, t: torch.Tensor) -> None:
        key = _storage_key(t)
        if key is None or key in self.excluded:
            return
        entry = self.live.get(key)
        if entry is None:
            entry = self.live[key] = [0, t.untyped_storage().nbytes()]
            self.current += entry[1]
            self.peak = max(self.peak, self.current)
        entry[0] += 1
        weakref.finalize(t, self._release, key).atexit = False

    def _release(self, key: tuple[int, str]) -> None:
        if key in self.live:
            self.live[key][0] -= 1
            if self.live[key][0] == 0:
                self.current -= self.live.pop(key)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        macs, ew = _op_cost(func, args, out)
        self.macs[self.stack[-1]] += macs
        self.ew[self.stack[-1]] += ew
        tensors = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if "batch_norm" in func.overloadpacket.__name__:  # eval-mode saved stats: empty on CPU, (C,) on meta
            tensors = tensors[:1]
        for t in tensors:
            self.track(t)
        return out


def profile(
    model: nn.Module,
    input_size: tuple[int, ...] = (1, 3, 224, 224),
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> ModelProfile:
    """Profile one ``torch.no_grad()`` eval-mode forward of ``model`` on ``torch.randn(input_size)``.

    The model must already live on ``device`` in ``dtype`` (it is not moved).  Its per-module
    training flags are restored and every hook is removed afterwards.  ``peak_activation_bytes``
    is the largest total of activation tensors alive at once during one no-grad forward, inputs
    included, parameters excluded (and buffers; storages counted whole, even for views).
    Rows list modules that own parameters or had work attributed directly to them, in execution
    order; modules with parameters that never ran are appended at the end.
    Raises :class:`~zoo.errors.InputSizeError` when the net cannot take ``input_size``.
    """
    input_size = tuple(int(s) for s in input_size)
    if getattr(model, "genotype", None) is not None and len(input_size) == 4:
        from nasseg.zoo.registry import check_input_size  # zoo nets know their divisor: say so before torch fails

        check_input_size(model, input_size[2:])
    names = {m: n for n, m in model.named_modules()}
    params = list(model.parameters())
    owned = params + list(model.buffers())
    counter = _Counter({k for k in map(_storage_key, owned) if k is not None})
    seen: dict[str, list[Any]] = {}  # in execution order: name -> [type, output_shape, activation_bytes]

    def pre_hook(module: nn.Module, _args: Any) -> None:
        name = names[module]
        counter.stack.append(name)
        seen.setdefault(name, [type(module).__name__, (), 0])

    def post_hook(module: nn.Module, _args: Any, output: Any) -> None:
        if len(counter.stack) > 1:
            counter.stack.pop()
        tensors = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)]
        row = seen[names[module]]
        if tensors and row[1] == ():
            row[1] = tuple(tensors[0].shape)
        row[2] += sum(t.numel() * t.element_size() for t in tensors)

    flags = {m: m.training for m in model.modules()}
    handles = []
    try:
        for m in names:
            handles.append(m.register_forward_pre_hook(pre_hook))
            handles.append(m.register_forward_hook(post_hook, always_call=True))
        model.eval()
        x = torch.randn(input_size, device=device, dtype=dtype)
        with torch.no_grad(), counter:
            counter.track(x)
            output = model(x)
    except (RuntimeError, ValueError) as e:
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
        if isinstance(e, NassegError | torch.OutOfMemoryError) or not _SIZE_ERROR.search(first):
            raise
        raise InputSizeError(f"{type(model).__name__} cannot take input size {input_size}: {first}") from e
    finally:
        for h in handles:
            h.remove()
        for m, flag in flags.items():
            m.training = flag

    layers = []
    unused = [n for m, n in names.items() if n not in seen and next(m.parameters(False), None) is not None]
    for name in [*seen, *unused]:
        module = model.get_submodule(name)
        typ, shape, act = seen.get(name, [type(module).__name__, (), 0])
        own = sum(p.numel() for p in module.parameters(recurse=False))
        macs, ew = counter.macs[name], counter.ew[name]
        if own or macs or ew:
            layers.append(LayerRow(name or "(root)", typ, shape, own, macs, ew, act))
    macs = sum(r.macs for r in layers)
    aux = {p for m, n in names.items() if "auxiliary" in n.split(".") for p in m.parameters()}
    return ModelProfile(
        input_size=input_size,
        params_total=sum(p.numel() for p in params),
        params_trainable=sum(p.numel() for p in params if p.requires_grad),
        params_auxiliary=sum(p.numel() for p in aux),
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        macs=macs,
        flops=2 * macs,
        elementwise_ops=sum(r.elementwise_ops for r in layers),
        peak_activation_bytes=counter.peak,
        output_shapes=[tuple(t.shape) for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)],
        layers=layers,
    )
