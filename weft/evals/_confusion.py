"""Confusion matrices: a label metric whose values read ``expected->got`` drawn as an SVG grid."""

from __future__ import annotations

import html
from collections.abc import Mapping

__all__ = ["confusion_charts"]

_ARROW = "->"


def _grid(title: str, counts: Mapping[str, int]) -> str:
    pairs = {tuple(k.split(_ARROW, 1)): n for k, n in counts.items()}
    names = list(dict.fromkeys(name for pair in pairs for name in pair))
    cell, left, top = 44, 110, 60
    size_w, size_h = left + cell * len(names) + 10, top + cell * len(names) + 10
    peak = max(pairs.values(), default=1) or 1
    parts = [
        f'<svg class="chart-svg confusion" width="{size_w}" height="{size_h}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="12" font-size="10">got (columns) / expected (rows)</text>',
    ]
    for i, name in enumerate(names):
        label = html.escape(name)
        x = left + i * cell + cell / 2
        parts.append(
            f'<text x="{x:.0f}" y="{top - 6}" font-size="10" text-anchor="end" '
            f'transform="rotate(-30 {x:.0f} {top - 6})">{label}</text>'
        )
        parts.append(
            f'<text x="{left - 4}" y="{top + i * cell + cell / 2 + 4:.0f}" font-size="10" '
            f'text-anchor="end">{label}</text>'
        )
    for r, expected in enumerate(names):
        for c, got in enumerate(names):
            n = pairs.get((expected, got), 0)
            shade = 0.08 + 0.85 * n / peak if n else 0.0
            color = "47,158,110" if r == c else "214,69,65"
            x, y = left + c * cell, top + r * cell
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="rgba({color},{shade:.2f})" stroke="#e3e6eb">'
                f"<title>{html.escape(expected)} -> {html.escape(got)}: {n}</title></rect>"
                f'<text x="{x + cell / 2 - 1:.0f}" y="{y + cell / 2 + 4:.0f}" font-size="12" '
                f'text-anchor="middle">{n}</text>'
            )
    parts.append("</svg>")
    return f'<div class="chart"><h3>{html.escape(title)}</h3>{"".join(parts)}</div>'


def confusion_charts(labels: Mapping[str, Mapping[str, Mapping[str, int]]]) -> list[str]:
    """One confusion-matrix chart per variant and label metric whose every value is ``a->b``.

    ``labels`` maps a variant to its label metrics' counts (``VariantSummary.labels``).
    """
    charts = []
    for variant, metrics in labels.items():
        for metric, counts in metrics.items():
            if counts and all(_ARROW in value for value in counts):
                name = metric if len(labels) == 1 else f"{variant}/{metric}"
                charts.append(_grid(f"{name}: confusion matrix", counts))
    return charts
