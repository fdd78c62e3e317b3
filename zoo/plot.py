"""Pictures of genotypes (matplotlib with the Agg canvas; no graphviz, no pyplot state).

:func:`plot_genotype` draws one PNG per genotype: the cell DAGs of cell-based families (cellnet
normal/reduce, autosegnet down/bridge/up, the iac-unet implant cell), the encoder widths and skip
bits of a ``unet``, and a block diagram of ``smp`` nets and IAC base U-Nets. :func:`plot_cell`
draws one cell into a matplotlib ``Axes`` (searchers reuse it for their run pictures).

Cell layout (computed here, layered): inputs in the first column, each intermediate node one
column right of its latest input, the output last; edges carry their op names, placed greedily
where they overlap no node and no other label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path as MplPath

from nasseg.zoo.genotype import (
    AutoSegNetArch,
    Cell,
    CellNetArch,
    Genotype,
    IACBaseRef,
    IACUNetArch,
    SMPArch,
    UNetArch,
)
from nasseg.zoo.io import save_figure

__all__ = ["plot_cell", "plot_genotype"]

# Data units: one unit is INCH inches on the page, so sizes in points follow from data sizes.
INCH = 0.62
_DX, _DY = 4.6, 1.5  # column and row spacing of a cell drawing
_NODE_R = 0.36  # half size of a node box
_FONT = 8.5
_CHAR_W, _LINE_H = 0.125, 0.36  # label glyph width and height in data units at _FONT
_DPI = 130
_ROUND = "round,pad=0.02,rounding_size=0.15"
_OP_COLOURS = {
    "none": "#b0b0b0",
    "skip_connect": "#6b6b6b",
    "max_pool_3x3": "#2e8b57",
    "avg_pool_3x3": "#3cb371",
    "channel_att": "#8e44ad",
    "spatial_att": "#a569bd",
    "hdc_3x3": "#c0392b",
}
_CONV_COLOUR = "#1f5fa8"
_DIL_COLOUR = "#d35400"
_FILL = {"input": "#d6e6f5", "node": "#fff2c6", "output": "#d5efd5", "block": "#eeeeee"}


def _bits(bits: Sequence[bool]) -> str:
    return "".join("1" if bit else "0" for bit in bits)


def _op_colour(op: str) -> str:
    if op in _OP_COLOURS:
        return _OP_COLOURS[op]
    return _DIL_COLOUR if op.startswith("dil_") else _CONV_COLOUR


# -- cell layout -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CellLayout:
    """Node centres (inputs 0 and 1, intermediates 2.., output ``-1``) and the drawing's extent."""

    pos: dict[int, tuple[float, float]]
    width: float
    height: float


def _layout(cell: Cell) -> _CellLayout:
    column = {0: 0, 1: 0}
    for k, edges in enumerate(cell.nodes, start=2):
        column[k] = 1 + max(column[source] for _, source in edges)
    out_col = 1 + max(column[k] for k in cell.output_nodes())
    columns: dict[int, list[int]] = {}
    for node, col in column.items():
        columns.setdefault(col, []).append(node)
    height = max(max(len(nodes) for nodes in columns.values()) - 1, 1) * _DY
    pos: dict[int, tuple[float, float]] = {}
    for col, nodes in columns.items():  # every column spans the full height: fewer crossings near the inputs
        step = height / (len(nodes) - 1) if len(nodes) > 1 else 0.0
        for i, node in enumerate(sorted(nodes)):
            pos[node] = (col * _DX, (height / 2 - i * step) if len(nodes) > 1 else 0.0)
    pos[-1] = (out_col * _DX, 0.0)
    return _CellLayout(pos, out_col * _DX, height)


def _bezier(p0: tuple[float, float], p2: tuple[float, float], rad: float, t: float) -> tuple[float, float]:
    """Point ``t`` of matplotlib's ``arc3`` curve from p0 to p2 (equal-aspect axes)."""
    (x0, y0), (x2, y2) = p0, p2
    cx, cy = (x0 + x2) / 2 + rad * (y2 - y0), (y0 + y2) / 2 - rad * (x2 - x0)
    u = 1 - t
    return u * u * x0 + 2 * u * t * cx + t * t * x2, u * u * y0 + 2 * u * t * cy + t * t * y2


def _blocked(p0: tuple[float, float], p2: tuple[float, float], rad: float,
             obstacles: list[tuple[float, float, float]]) -> bool:  # fmt: skip
    """True when the curve passes through a node box ``(x, y, half width)`` other than its ends."""
    for t in (i / 24 for i in range(2, 23)):
        x, y = _bezier(p0, p2, rad, t)
        if any(abs(x - ox) < hw + 0.2 and abs(y - oy) < _NODE_R + 0.2 for ox, oy, hw in obstacles):
            return True
    return False


def _overlaps(box: tuple[float, float, float, float], others: list[tuple[float, float, float, float]]) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in others)


def _draw_node(ax: Axes, xy: tuple[float, float], text: str, kind: str, half_w: float = _NODE_R) -> None:
    x, y = xy
    box = FancyBboxPatch((x - half_w, y - _NODE_R), 2 * half_w, 2 * _NODE_R, boxstyle=_ROUND, facecolor=_FILL[kind],
                         edgecolor="#333333", linewidth=1.0, zorder=3)  # fmt: skip
    ax.add_patch(box)
    ax.text(x, y, text, ha="center", va="center", fontsize=_FONT + 1, zorder=4, fontweight="bold")


def _arrow(ax: Axes, p0: tuple[float, float], p2: tuple[float, float], rad: float, colour: str, style: str = "-",
           start: tuple[float, float] = (0.0, 0.0), end: tuple[float, float] = (0.0, 0.0)) -> None:  # fmt: skip
    """An ``arc3``-bent arrow from ``p0`` to ``p2``, clipped to leave a ``start`` box and stop at an
    ``end`` box (half width, half height in data units, centred on the points)."""
    (x0, y0), (x2, y2) = p0, p2
    ctrl = ((x0 + x2) / 2 + rad * (y2 - y0), (y0 + y2) / 2 - rad * (x2 - x0))

    def inside(t: float, centre: tuple[float, float], box: tuple[float, float]) -> bool:
        x, y = _bezier(p0, p2, rad, t)
        return abs(x - centre[0]) <= box[0] + 0.04 and abs(y - centre[1]) <= box[1] + 0.04

    steps = [i / 200 for i in range(201)]
    a = next((t for t in steps if not inside(t, p0, start)), 0.0)
    b = next((t for t in reversed(steps) if not inside(t, p2, end)), 1.0)
    q1 = tuple(
        (1 - a) * (1 - b) * p + (a * (1 - b) + b * (1 - a)) * c + a * b * q
        for p, c, q in zip(p0, ctrl, p2, strict=True)
    )  # fmt: skip  (the blossom of [a, b])
    path = MplPath(
        [_bezier(p0, p2, rad, a), q1, _bezier(p0, p2, rad, b)], [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3]
    )
    ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>,head_length=5,head_width=3", color=colour,
                                 linewidth=1.3, linestyle=style, shrinkA=0, shrinkB=0, zorder=2))  # fmt: skip


@dataclass(frozen=True)
class _Edge:
    source: int
    target: int
    label: str | None
    colour: str
    style: str
    rad: float = 0.0


def _route(cell: Cell, pos: dict[int, tuple[float, float]], half: dict[int, float]) -> list[_Edge]:
    """Every edge of the drawing with the bend (``arc3`` rad) that keeps it off other nodes."""
    wanted = [_Edge(source, k, op, _op_colour(op), ":" if op == "none" else "-")
              for k, node_edges in enumerate(cell.nodes, start=2) for op, source in node_edges]  # fmt: skip
    wanted += [_Edge(node, -1, None, "#999999", "--") for node in cell.output_nodes()]
    if cell.residual:
        wanted.append(_Edge(1, -1, "+ residual", "#777777", "--"))
    routed: list[_Edge] = []
    for edge in wanted:
        obstacles = [(*xy, half[node]) for node, xy in pos.items() if node not in (edge.source, edge.target)]
        taken = {e.rad for e in routed if (e.source, e.target) == (edge.source, edge.target)}
        rads = [r for r in (0.0, 0.16, -0.16, 0.28, -0.28, 0.4, -0.4) if r not in taken]
        rad = next((r for r in rads if not _blocked(pos[edge.source], pos[edge.target], r, obstacles)), rads[-1])
        routed.append(_Edge(edge.source, edge.target, edge.label, edge.colour, edge.style, rad))
    return routed


def _place_labels(edges: list[_Edge], pos: dict[int, tuple[float, float]],
                  boxes: list[tuple[float, float, float, float]]) -> list[tuple[float, float]]:  # fmt: skip
    """A label position per labelled edge: on its own curve, off nodes and other labels, crossing as
    few other edges as possible (greedy, in edge order)."""
    samples = [[_bezier(pos[e.source], pos[e.target], e.rad, i / 40) for i in range(41)] for e in edges]
    placed: list[tuple[float, float]] = []
    taken = list(boxes)
    for i, edge in enumerate(edges):
        if edge.label is None:
            continue
        w, h = len(edge.label) * _CHAR_W + 0.14, _LINE_H
        others = [p for j, points in enumerate(samples) if j != i for p in points]
        best: tuple[float, tuple[float, float], tuple[float, float, float, float]] | None = None
        for rank, t in enumerate((0.6, 0.5, 0.7, 0.4, 0.75, 0.32, 0.8, 0.25, 0.55, 0.45, 0.65)):
            x, y = _bezier(pos[edge.source], pos[edge.target], edge.rad, t)
            box = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
            crossings = sum(box[0] - 0.05 < px < box[2] + 0.05 and box[1] - 0.05 < py < box[3] + 0.05
                            for px, py in others)  # fmt: skip
            score = (1000 if _overlaps(box, taken) else 0) + 10 * crossings + rank * 0.1
            if best is None or score < best[0]:
                best = (score, (x, y), box)
        assert best is not None
        placed.append(best[1])
        taken.append(best[2])
    return placed


@dataclass(frozen=True)
class _Drawing:
    """A cell ready to draw: node centres and half widths, routed edges, data limits."""

    pos: dict[int, tuple[float, float]]
    half: dict[int, float]
    edges: list[_Edge]
    xlim: tuple[float, float]
    ylim: tuple[float, float]


def _prepare(cell: Cell, inputs: Sequence[str], output: str) -> _Drawing:
    layout = _layout(cell)
    pos = layout.pos
    half_io = max(_NODE_R, max(len(name) for name in [*inputs, output]) * _CHAR_W * 0.62 + 0.12)
    half = {node: half_io if node in (0, 1, -1) else _NODE_R for node in pos}
    edges = _route(cell, pos, half)
    ys = [y for e in edges for _, y in (_bezier(pos[e.source], pos[e.target], e.rad, i / 20) for i in range(21))]
    low = min([-layout.height / 2 - _NODE_R, *ys]) - 0.45
    high = max([layout.height / 2 + _NODE_R, *ys]) + 0.6  # room for the note above the output
    return _Drawing(pos, half, edges, (-half_io - 0.5, layout.width + half_io + 0.5), (low, high))


def _draw_cell(ax: Axes, cell: Cell, drawing: _Drawing, inputs: Sequence[str], output: str) -> None:
    pos, half, edges = drawing.pos, drawing.half, drawing.edges
    node_boxes = [(x - half[n], y - _NODE_R, x + half[n], y + _NODE_R) for n, (x, y) in pos.items()]
    for edge in edges:
        _arrow(ax, pos[edge.source], pos[edge.target], edge.rad, edge.colour, edge.style,
               (half[edge.source], _NODE_R), (half[edge.target], _NODE_R))  # fmt: skip
    labelled = [edge for edge in edges if edge.label is not None]
    for edge, (x, y) in zip(labelled, _place_labels(edges, pos, node_boxes), strict=True):
        residual = edge.target == -1
        ax.text(x, y, edge.label, ha="center", va="center", fontsize=_FONT, color=edge.colour, zorder=5,
                style="italic" if residual else "normal",
                bbox={"boxstyle": "round,pad=0.12", "facecolor": "white", "linewidth": 0.6,
                      "edgecolor": "none" if residual else edge.colour})  # fmt: skip
    for node in (0, 1):
        _draw_node(ax, pos[node], inputs[node], "input", half[node])
    for node in range(2, cell.steps + 2):
        _draw_node(ax, pos[node], str(node), "node")
    _draw_node(ax, pos[-1], output, "output", half[-1])
    concat = "loose ends" if cell.concat == "loose" else "concat"
    ax.text(pos[-1][0], pos[-1][1] + _NODE_R + 0.12, f"{concat} of {', '.join(map(str, cell.output_nodes()))}",
            ha="center", va="bottom", fontsize=_FONT - 0.5, color="#555555")  # fmt: skip
    ax.set_xlim(*drawing.xlim)
    ax.set_ylim(*drawing.ylim)
    ax.set_aspect("equal")
    ax.axis("off")


def plot_cell(
    cell: Cell,
    ax: Axes,
    title: str | None = None,
    *,
    inputs: Sequence[str] = ("c[k-2]", "c[k-1]"),
    output: str = "c[k]",
) -> Axes:
    """Draw ``cell`` into ``ax`` as a layered DAG: input nodes (named ``inputs``), numbered
    intermediate nodes, the output node (named ``output``), edges labelled with their op names,
    the concatenation (and the residual of input 1) into the output dashed. Returns ``ax``."""
    _draw_cell(ax, cell, _prepare(cell, inputs, output), inputs, output)
    if title:
        ax.set_title(title, fontsize=_FONT + 2, loc="left", fontweight="bold")
    return ax


# -- whole genotypes ---------------------------------------------------------------------------


def _cells_figure(cells: list[tuple[str, Cell]], inputs: Sequence[str], output: str, title: str,
                  note: str) -> Figure:  # fmt: skip
    drawings = [_prepare(cell, inputs, output) for _, cell in cells]
    left = min(d.xlim[0] for d in drawings)
    right = max(d.xlim[1] for d in drawings)
    heights = [d.ylim[1] - d.ylim[0] + 0.5 for d in drawings]  # + the title
    fig = Figure(figsize=(max((right - left) * INCH, 6.0), sum(heights) * INCH + 0.8), dpi=_DPI, layout="constrained")
    axes = fig.subplots(len(cells), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (name, cell), drawing in zip(axes, cells, drawings, strict=True):
        _draw_cell(ax, cell, drawing, inputs, output)
        ax.set_xlim(left, right)
        ax.set_title(name, fontsize=_FONT + 2, loc="left", fontweight="bold")
    fig.suptitle(title, fontsize=_FONT + 3, fontweight="bold")
    if note:
        fig.text(0.01, 0.005, note, fontsize=_FONT - 0.5, color="#444444", ha="left", va="bottom")
    return fig


def _blocks_figure(blocks: list[tuple[str, str]], title: str, note: str) -> Figure:
    """A left-to-right chain of labelled boxes (``(heading, body)`` each)."""
    fig = Figure(figsize=(2.4 * len(blocks) + 0.6, 2.6), dpi=_DPI, layout="constrained")
    ax = fig.subplots()
    step = 3.0
    for i, (heading, body) in enumerate(blocks):
        x = i * step
        kind = "input" if i == 0 else "output" if i == len(blocks) - 1 else "block"
        ax.add_patch(FancyBboxPatch((x - 1.15, -0.8), 2.3, 1.6, boxstyle=_ROUND,
                                    facecolor=_FILL[kind], edgecolor="#333333", linewidth=1.0))  # fmt: skip
        ax.text(x, 0.38, heading, ha="center", va="center", fontsize=_FONT + 1, fontweight="bold")
        ax.text(x, -0.15, body, ha="center", va="center", fontsize=_FONT - 0.5, wrap=True)
        if i:
            _arrow(ax, (x - step + 1.15, 0), (x - 1.15, 0), 0.0, "#333333")
    ax.set_xlim(-1.4, (len(blocks) - 1) * step + 1.4)
    ax.set_ylim(-1.2, 1.1)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.suptitle(title, fontsize=_FONT + 3, fontweight="bold")
    if note:
        fig.text(0.01, 0.01, note, fontsize=_FONT - 0.5, color="#444444", ha="left", va="bottom")
    return fig


def _unet_figure(genotype: Genotype, arch: UNetArch, title: str) -> Figure:
    """Encoder column (left, going down), bottleneck, decoder column (right, going up), skip bits."""
    levels, task = len(arch.channels), genotype.task
    fig = Figure(figsize=(7.5, 1.05 * (levels + 1) + 1.2), dpi=_DPI, layout="constrained")
    ax = fig.subplots()
    left, right, half_w = 0.0, 6.0, 1.05

    def box(x: float, row: int, text: str, kind: str) -> tuple[float, float]:
        y = -row * 1.3
        ax.add_patch(FancyBboxPatch((x - half_w, y - 0.4), 2 * half_w, 0.8, boxstyle=_ROUND, facecolor=_FILL[kind],
                                    edgecolor="#333333", linewidth=1.0, zorder=3))  # fmt: skip
        ax.text(x, y, text, ha="center", va="center", fontsize=_FONT, zorder=4)
        return x, y

    enc = [box(left, 0, f"input\n{task.in_channels} ch, 1/1", "input")]
    dec = [box(right, 0, f"output\n{task.num_classes} ch, 1/1", "output")]
    for row in range(1, levels):
        width = arch.channels[row - 1]
        enc.append(box(left, row, f"{width} ch, 1/{2**row}", "block"))
        skip = arch.skips[row - 1]
        dec.append(box(right, row, f"{width}{f' + {width}' if skip else ''} ch, 1/{2**row}", "block"))
    bottom = box((left + right) / 2, levels, f"{arch.channels[-1]} ch, 1/{2**levels}", "node")
    for a, b in zip(enc, enc[1:], strict=False):
        _arrow(ax, (a[0], a[1] - 0.4), (b[0], b[1] + 0.4), 0.0, "#333333")
    _arrow(ax, (enc[-1][0] + 0.3, enc[-1][1] - 0.4), (bottom[0] - half_w, bottom[1]), 0.0, "#333333")
    _arrow(ax, (bottom[0] + half_w, bottom[1]), (dec[-1][0] - 0.3, dec[-1][1] - 0.4), 0.0, "#333333")
    for a, b in zip(dec[1:], dec, strict=False):
        _arrow(ax, (a[0], a[1] + 0.4), (b[0], b[1] - 0.4), 0.0, "#333333")
    for row in range(1, levels):
        on = arch.skips[row - 1]
        (x0, y), (x1, _) = enc[row], dec[row]
        _arrow(ax, (x0 + half_w, y), (x1 - half_w, y), 0.0, _CONV_COLOUR if on else "#bbbbbb", "-" if on else ":")
        ax.text((x0 + x1) / 2, y + 0.14, "skip (concat)" if on else "no skip", ha="center", va="bottom",
                fontsize=_FONT, color=_CONV_COLOUR if on else "#888888")  # fmt: skip
    ax.set_xlim(left - half_w - 0.2, right + half_w + 0.2)
    ax.set_ylim(-levels * 1.3 - 0.6, 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.suptitle(title, fontsize=_FONT + 3, fontweight="bold")
    fig.text(0.01, 0.005, f"down: {arch.kernel}x{arch.kernel} conv stride {arch.stride}, norm {arch.norm}; "
             f"up: {arch.kernel}x{arch.kernel} transposed conv; skip bits {_bits(arch.skips)}",
             fontsize=_FONT - 0.5, color="#444444")  # fmt: skip
    return fig


def _output_text(genotype: Genotype) -> str:
    task = genotype.task
    if task.kind == "segmentation":
        return "1 ch, sigmoid" if task.num_classes == 1 else f"{task.num_classes} ch, softmax"
    return f"{task.num_classes} {'classes' if task.kind == 'classification' else 'ch'}"


def _figure(genotype: Genotype, title: str) -> Figure:
    arch, task = genotype.arch, genotype.task
    size = f"{task.in_channels}x{task.input_size[0]}x{task.input_size[1]}"
    if isinstance(arch, CellNetArch):
        cells = [("normal cell" + (" (also reduces, at stride 2)" if arch.reduce is None else ""), arch.normal)]
        if arch.reduce is not None:
            cells.append(("reduction cell", arch.reduce))
        note = (f"{arch.layers} cells, C={arch.init_channels}, stem {arch.stem}, reductions at "
                f"{', '.join(map(str, arch.reductions()))}, head {arch.head.type}")  # fmt: skip
        return _cells_figure(cells, ("c[k-2]", "c[k-1]"), "c[k]", title, note)
    if isinstance(arch, AutoSegNetArch):
        cells = [("down layer cell", arch.down), ("bridge layer cell", arch.bridge), ("up layer cell", arch.up)]
        note = f"stem {arch.stem_channels} ch; long skips {_bits(arch.long_skips)} (bottom first)"
        return _cells_figure(cells, ("h[t-1]", "h[t]"), "h[t+1]", title, note)
    if isinstance(arch, IACUNetArch) and arch.cell is not None:
        base = arch.base.model if isinstance(arch.base, IACBaseRef) else arch.base.encoder
        levels = "every skip" if arch.levels is None else f"skip levels {arch.levels}"
        note = f"implanted in {levels} of {base}: 1x1 in -> cell ({arch.cell_channels} ch) -> 1x1 to the skip's width"
        return _cells_figure([("implantable adaptive cell", arch.cell)], ("up (decoder)", "skip (encoder)"),
                             "cell out", title, note)  # fmt: skip
    if isinstance(arch, UNetArch):
        return _unet_figure(genotype, arch, title)
    if isinstance(arch, IACUNetArch):
        widths = ", ".join(map(str, arch.base.decoder_channels))
        blocks = [("input", size), ("encoder", arch.base.encoder), ("decoder", f"U-Net, widths\n{widths}"),
                  ("head", _output_text(genotype))]  # fmt: skip
        return _blocks_figure(blocks, title, "IAC base U-Net (skips concatenate; no implanted cell)")
    if isinstance(arch, SMPArch):
        decoder = arch.arch + (f"\n{', '.join(map(str, arch.decoder_channels))}" if arch.decoder_channels else "")
        blocks = [("input", size), ("encoder", f"{arch.encoder}\ndepth {arch.encoder_depth}"), ("decoder", decoder),
                  ("head", _output_text(genotype))]  # fmt: skip
        return _blocks_figure(blocks, title, "segmentation-models-pytorch baseline")
    raise TypeError(f"plot_genotype: no drawing for family {genotype.family!r}")  # pragma: no cover


def plot_genotype(genotype: Genotype, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG picture of ``genotype`` to ``path`` (parents created) and return the path.

    ``title`` defaults to the name, family and arch hash."""
    path = Path(path)
    title = title or f"{genotype.name}  ({genotype.family}, arch {genotype.arch_hash})"
    fig = _figure(genotype, title)
    FigureCanvasAgg(fig)
    save_figure(fig, path, dpi=_DPI, facecolor="white")
    return path
