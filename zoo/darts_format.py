"""Read and write published DARTS-format genotype text, without ``eval``.

Accepted: ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), reduce=[...],
reduce_concat=[2, 3, 4, 5])``, optionally as an assignment (``DARTS_V2 = Genotype(...)``), with
edge lists flat (two edges per node, the DARTS convention) or nested per node, and concat as a
list, tuple or ``range(a, b)``. The text is parsed with :mod:`ast` and only literals are read.
"""

from __future__ import annotations

import ast
from typing import Any

from nasseg.zoo.errors import GenotypeError

_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")


def parse_darts(text: str) -> dict[str, dict[str, Any]]:
    """Parse DARTS-format text into ``{"normal": cell_dict, "reduce": cell_dict}`` (reduce optional)."""
    try:
        tree = ast.parse(text.strip(), mode="exec")
    except SyntaxError as exc:
        raise GenotypeError(f"DARTS text: line {exc.lineno}: not a Python expression: {exc.msg}") from None
    if len(tree.body) != 1:
        raise GenotypeError("DARTS text: expected exactly one Genotype(...) expression")
    node = tree.body[0]
    value = node.value if isinstance(node, (ast.Expr, ast.Assign)) else None
    if not isinstance(value, ast.Call) or not isinstance(value.func, ast.Name | ast.Attribute):
        raise GenotypeError("DARTS text: expected a call Genotype(normal=..., normal_concat=..., ...)")
    if value.args:
        raise GenotypeError("DARTS text: pass the cells as keywords (normal=..., reduce=...)")
    fields: dict[str, Any] = {}
    for keyword in value.keywords:
        if keyword.arg not in _KEYS:
            raise GenotypeError(f"DARTS text: unknown keyword {keyword.arg!r} (expected {', '.join(_KEYS)})")
        fields[keyword.arg] = _literal(keyword.value, keyword.arg)
    if "normal" not in fields:
        raise GenotypeError("DARTS text: missing normal=[...]")
    cells = {"normal": _cell(fields["normal"], fields.get("normal_concat"), "normal")}
    if "reduce" in fields:
        cells["reduce"] = _cell(fields["reduce"], fields.get("reduce_concat"), "reduce")
    return cells


def format_darts(normal: Any, reduce: Any | None = None) -> str:
    """DARTS-format text for the cells (``zoo.genotype.Cell``); concat written as a list."""
    parts = [f"normal={_edges_text(normal)}", f"normal_concat={normal.output_nodes()}"]
    if reduce is not None:
        parts += [f"reduce={_edges_text(reduce)}", f"reduce_concat={reduce.output_nodes()}"]
    return f"Genotype({', '.join(parts)})"


def _edges_text(cell: Any) -> str:
    edges = [f"({op!r}, {source})" for node in cell.nodes for op, source in node]
    return f"[{', '.join(edges)}]"


def _literal(node: ast.AST, field: str) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        try:
            bounds = [ast.literal_eval(arg) for arg in node.args]
            return list(range(*bounds))
        except (ValueError, TypeError) as exc:
            raise GenotypeError(f"DARTS text: {field}: bad range(...): {exc}") from None
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError) as exc:
        raise GenotypeError(f"DARTS text: {field}: only literals and range(a, b) are allowed ({exc})") from None


def _cell(edges: Any, concat: Any, field: str) -> dict[str, Any]:
    if not isinstance(edges, list | tuple) or not edges:
        raise GenotypeError(f"DARTS text: {field} must be a non-empty list of (op, input) pairs")
    if all(_is_edge(e) for e in edges):
        if len(edges) % 2:
            raise GenotypeError(f"DARTS text: {field}: a flat edge list needs two edges per node, got {len(edges)}")
        nodes = [[list(edges[i]), list(edges[i + 1])] for i in range(0, len(edges), 2)]
    elif all(isinstance(n, list | tuple) and n and all(_is_edge(e) for e in n) for n in edges):
        nodes = [[list(e) for e in n] for n in edges]
    else:
        raise GenotypeError(f"DARTS text: {field}: edges must be ('op', input) pairs, flat or grouped per node")
    cell: dict[str, Any] = {"nodes": nodes}
    if concat is not None:
        if not isinstance(concat, list | tuple) or not all(isinstance(i, int) for i in concat):
            raise GenotypeError(f"DARTS text: {field}_concat must be a list of node indices or range(a, b)")
        cell["concat"] = list(concat)
    else:
        cell["concat"] = list(range(2, len(nodes) + 2))
    return cell


def _is_edge(edge: Any) -> bool:
    return isinstance(edge, list | tuple) and len(edge) == 2 and isinstance(edge[0], str) and isinstance(edge[1], int)
