"""Reports of a suite run: ``results.json``, JUnit XML, a self-contained HTML page, and a table.

* :func:`write_reports` writes all three files into a folder.
* :func:`junit_xml`: one test case per case run, plus one per threshold and per regression,
  so CI shows what failed.
* :func:`html_report`: one HTML file, no external assets: a summary, per-metric charts (the
  score distribution and a latency histogram, as inline SVG), the diff against a baseline, and
  a per-case table with inputs, outputs, sources and failures.
* :func:`print_summary` and :func:`print_comparison`: terminal tables (rich).

Example:
    >>> paths = write_reports(result, "eval-out")  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['html', 'json', 'junit']
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from weft.evals._confusion import confusion_charts
from weft.evals.results import (
    INFORMATIONAL,
    CaseResult,
    Comparison,
    EvalResult,
    lower_is_better,
)

__all__ = ["html_report", "junit_xml", "print_comparison", "print_summary", "write_reports"]

_PALETTE = ("#3b6fd8", "#e07b39", "#2f9e6e", "#b84fb0", "#c9a227", "#5f6b7a")


def write_reports(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``report.html`` and ``junit.xml`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": result.save(out / "results.json"),
        "html": out / "report.html",
        "junit": out / "junit.xml",
    }
    paths["html"].write_text(html_report(result), encoding="utf-8")
    paths["junit"].write_text(junit_xml(result), encoding="utf-8")
    return paths


def _fmt(value: float | None, metric: str = "") -> str:
    if value is None:
        return "—"
    bare = metric.rsplit("/", 1)[-1]
    if bare.endswith("_ms"):
        return f"{value:.1f}"
    if bare == "cost_usd":
        return f"{value:.4f}"
    if bare == "tokens_per_case":
        return f"{value:.1f}"
    return f"{value:.3f}"


def _case_label(result: EvalResult, case: CaseResult) -> str:
    label = case.case if len(result.summary) == 1 else f"{case.variant}/{case.case}"
    return f"{label} #{case.repeat + 1}" if case.repeat else label


def _metric_rows(result: EvalResult) -> list[str]:
    names: dict[str, None] = {}
    for s in result.summary.values():
        names.update(dict.fromkeys(m for m in s.metrics if m not in INFORMATIONAL))
    for s in result.summary.values():
        names.update(dict.fromkeys(m for m in s.metrics if m in INFORMATIONAL))
    return list(names)


def _verdict(result: EvalResult, variant: str, metric: str) -> bool | None:
    """Whether ``variant`` met every threshold on ``metric``; None when it has none."""
    several = len(result.summary) > 1
    flat = f"{variant}/{metric}" if several else metric
    checks = [t for t in result.thresholds if t.metric == flat]
    return all(t.passed for t in checks) if checks else None


def _threshold_spec(result: EvalResult, metric: str) -> str:
    specs = sorted(
        {f"{t.op} {t.value:g}" for t in result.thresholds if t.metric.rsplit("/", 1)[-1] == metric}
    )
    return ", ".join(specs)


# -- terminal ----------------------------------------------------------------------------------


def _console(out: TextIO) -> Any:
    from rich.console import Console

    return Console(file=out, width=100, highlight=False, soft_wrap=False)


def print_summary(result: EvalResult, out: TextIO, *, max_failures: int = 10) -> None:
    """Print the metrics table (variants side by side), failures and the verdict."""
    from rich import box
    from rich.table import Table

    console = _console(out)
    n_cases = len({c.case for c in result.cases})
    cached = sum(c.cached for c in result.cases)
    console.print(
        f"suite {result.suite}: {n_cases} cases x {len(result.summary)} "
        f"{'variant' if len(result.summary) == 1 else 'variants'}, "
        f"{len(result.cases)} runs ({cached} cached) in {result.duration_s:.1f} s"
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("metric")
    variants = list(result.summary)
    for v in variants:
        table.add_column(v if len(variants) > 1 else "value", justify="right")
    table.add_column("threshold")
    for metric in _metric_rows(result):
        cells = []
        for v in variants:
            value = result.summary[v].metrics.get(metric)
            verdict = _verdict(result, v, metric)
            mark = "  " if verdict is None else " ✓" if verdict else " ✗"
            cells.append(_fmt(value, metric) + mark)
        table.add_row(metric, *cells, _threshold_spec(result, metric))
    console.print(table)
    failed = [c for c in result.cases if not c.passed]
    if failed:
        console.print(f"failing cases ({len(failed)}):")
        for case in failed[:max_failures]:
            console.print(f"  {_case_label(result, case)}: {'; '.join(case.failures)}")
        if len(failed) > max_failures:
            console.print(f"  ... and {len(failed) - max_failures} more (see report.html)")
    if result.comparison is not None:
        console.print(
            f"against baseline from {result.comparison.baseline_started_at}: "
            f"{len(result.regressions)} regressions"
        )
        for line in result.regressions:
            console.print(f"  {line}")
    missed = result.failed_thresholds
    if result.passed:
        console.print(f"PASSED: {len(result.thresholds)} thresholds met")
    else:
        parts = []
        if missed:
            parts.append(f"{len(missed)} threshold{'s' if len(missed) != 1 else ''} missed")
        if result.regressions:
            n = len(result.regressions)
            parts.append(f"{n} regression{'s' if n != 1 else ''}")
        console.print(f"FAILED: {', '.join(parts)}")
        for t in missed:
            console.print(f"  {t.describe()}")


def print_comparison(comparison: Comparison, out: TextIO) -> None:
    """Print each metric's baseline value, current value and change."""
    from rich import box
    from rich.table import Table

    console = _console(out)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col, justify in (("metric", "left"), ("A", "right"), ("B", "right"), ("delta", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for d in comparison.metrics:
        delta = d.delta
        text = "—" if delta is None else f"{delta:+.4g}"
        if d.regressed:
            text += " worse"
        elif delta and (delta < 0 if lower_is_better(d.metric) else delta > 0):
            text += " better"
        table.add_row(d.metric, _fmt(d.baseline, d.metric), _fmt(d.current, d.metric), text)
    console.print(table)
    for label, cases in (
        ("newly failing", comparison.newly_failing),
        ("newly passing", comparison.newly_passing),
    ):
        if cases:
            console.print(f"{label} ({len(cases)}): {', '.join(cases)}")
    console.print(f"{len(comparison.regressions)} regressions")


# -- JUnit -------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _clean(text: str) -> str:
    return _CONTROL.sub("?", text)


def junit_xml(result: EvalResult) -> str:
    """JUnit XML: a ``testsuite`` per variant (a ``testcase`` per case run), one for the
    thresholds, and one for the regressions against the baseline when there is one."""
    root = ET.Element("testsuites", name=f"weft eval {result.suite}")
    totals = {"tests": 0, "failures": 0, "errors": 0}

    def suite(name: str, time_s: float = 0.0) -> ET.Element:
        return ET.SubElement(root, "testsuite", name=name, timestamp=result.started_at)

    def close(el: ET.Element, tests: int, failures: int, errors: int, time_s: float) -> None:
        el.set("tests", str(tests))
        el.set("failures", str(failures))
        el.set("errors", str(errors))
        el.set("time", f"{time_s:.3f}")
        totals["tests"] += tests
        totals["failures"] += failures
        totals["errors"] += errors

    for variant in result.summary:
        cases = [c for c in result.cases if c.variant == variant]
        name = result.suite if len(result.summary) == 1 else f"{result.suite}.{variant}"
        el = suite(name)
        failures = errors = 0
        for c in cases:
            tc = ET.SubElement(
                el,
                "testcase",
                classname=f"weft.eval.{name}",
                name=_clean(c.case + (f" #{c.repeat + 1}" if c.repeat else "")),
                time=f"{c.latency_ms / 1000:.3f}",
            )
            if c.error is not None:
                errors += 1
                err = ET.SubElement(tc, "error", message=_clean(c.error), type="GraphError")
                err.text = _clean(c.error)
            elif not c.passed:
                failures += 1
                lines = c.failures
                f = ET.SubElement(tc, "failure", message=_clean(lines[0]), type="AssertionError")
                f.text = _clean("\n".join(lines))
            if c.answer:
                ET.SubElement(tc, "system-out").text = _clean(c.answer)
        close(el, len(cases), failures, errors, sum(c.latency_ms for c in cases) / 1000)

    el = suite(f"{result.suite}.thresholds")
    for t in result.thresholds:
        tc = ET.SubElement(el, "testcase", classname=f"weft.eval.{result.suite}.thresholds")
        tc.set("name", f"{t.metric} {t.op} {t.value:g}")
        if not t.passed:
            ET.SubElement(tc, "failure", message=t.describe(), type="ThresholdMissed")
    close(el, len(result.thresholds), len(result.failed_thresholds), 0, 0.0)

    if result.comparison is not None:
        el = suite(f"{result.suite}.regressions")
        regressions = result.regressions
        tc = ET.SubElement(el, "testcase", classname=f"weft.eval.{result.suite}.regressions")
        tc.set("name", f"no regression against baseline {result.comparison.baseline_started_at}")
        if regressions:
            f = ET.SubElement(tc, "failure", message=_clean(regressions[0]), type="Regression")
            f.text = _clean("\n".join(regressions))
        close(el, 1, 1 if regressions else 0, 0, 0.0)

    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


# -- HTML --------------------------------------------------------------------------------------

_e = html.escape

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.muted{color:#6b7383}.badge{display:inline-block;padding:2px 10px;border-radius:10px;
color:#fff;font-weight:600;margin-left:8px;font-size:13px}.pass{background:#2f9e6e}
.fail{background:#d0463b}table{border-collapse:collapse;margin:6px 0}
td,th{border-bottom:1px solid #e3e6eb;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f5f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#2f9e6e}.bad{color:#d0463b;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:14px}.chart{border:1px solid #e3e6eb;border-radius:6px;
padding:6px}.chart h3{font-size:13px;margin:0 0 4px}.legend span{margin-right:10px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
#cases td{max-width:380px;overflow-wrap:anywhere;font-size:13px}
#cases tr.failed{background:#fff3f2}.src{font-size:12px}.src b{color:#2f9e6e}
pre{white-space:pre-wrap;margin:0;font:12px/1.4 ui-monospace,monospace}
"""

_JS = """
document.getElementById('only-failing').addEventListener('change', function (e) {
  document.querySelectorAll('#cases tbody tr').forEach(function (tr) {
    tr.style.display = e.target.checked && !tr.classList.contains('failed') ? 'none' : '';
  });
});
"""


def _legend(variants: Sequence[str]) -> str:
    if len(variants) < 2:
        return ""
    items = "".join(
        f'<span><i style="background:{_PALETTE[i % len(_PALETTE)]}"></i>{_e(v)}</span>'
        for i, v in enumerate(variants)
    )
    return f'<div class="legend">{items}</div>'


def _histogram(
    title: str, series: dict[str, list[float]], lo: float, hi: float, bins: int, unit: str = ""
) -> str:
    """A grouped-bar histogram as inline SVG; one colour per series."""
    w, h, pad_l, pad_b, pad_t = 320, 170, 30, 30, 8
    span = (hi - lo) or 1.0
    counts: dict[str, list[int]] = {}
    for name, values in series.items():
        c = [0] * bins
        for v in values:
            c[min(bins - 1, max(0, int((v - lo) / span * bins)))] += 1
        counts[name] = c
    top = max([1, *(max(c) for c in counts.values())])
    plot_w, plot_h = w - pad_l - 16, h - pad_b - pad_t
    slot = plot_w / bins
    bar = (slot - 2) / max(1, len(counts))
    parts = [
        f'<svg class="chart-svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'role="img" aria-label="{_e(title)}">',
        f'<line x1="{pad_l}" y1="{h - pad_b}" x2="{w - 6}" y2="{h - pad_b}" stroke="#9aa1ad"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" font-size="10" text-anchor="end">{top}</text>',
        f'<text x="{pad_l - 4}" y="{h - pad_b}" font-size="10" text-anchor="end">0</text>',
    ]
    for i, (name, c) in enumerate(counts.items()):
        color = _PALETTE[i % len(_PALETTE)]
        for b, n in enumerate(c):
            if not n:
                continue
            bh = n / top * plot_h
            x = pad_l + b * slot + 1 + i * bar
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{h - pad_b - bh:.1f}" width="{bar:.1f}" '
                f'height="{bh:.1f}" fill="{color}"><title>{_e(name)}: {n}</title></rect>'
            )
    for b in (0, bins // 2, bins):
        x = pad_l + b * slot
        label = f"{lo + span * b / bins:.3g}{unit}"
        parts.append(
            f'<text x="{x:.1f}" y="{h - pad_b + 14}" font-size="10" '
            f'text-anchor="middle">{_e(label)}</text>'
        )
    parts.append("</svg>")
    return f'<div class="chart"><h3>{_e(title)}</h3>{"".join(parts)}{_legend(list(series))}</div>'


def _charts(result: EvalResult) -> str:
    variants = list(result.summary)
    metrics: dict[str, None] = {}
    for c in result.cases:
        metrics.update(dict.fromkeys([*c.scores, *c.assertions]))
    charts = []
    for metric in metrics:
        series: dict[str, list[float]] = {}
        for v in variants:
            values = (c.value(metric) for c in result.cases if c.variant == v)
            series[v] = [x for x in values if x is not None]
        everything = [x for vs in series.values() for x in vs]
        hi = max([1.0, *everything])
        charts.append(_histogram(f"{metric}: score distribution", series, 0.0, hi, 10))
    latency = {v: [c.latency_ms for c in result.cases if c.variant == v] for v in variants}
    top = max([1.0, *(x for vs in latency.values() for x in vs)])
    charts.append(_histogram("latency histogram (ms)", latency, 0.0, top, 12))
    charts += confusion_charts({v: s.labels for v, s in result.summary.items()})
    return f'<div class="charts">{"".join(charts)}</div>'


def _summary_table(result: EvalResult) -> str:
    variants = list(result.summary)
    head = "".join(f"<th>{_e(v)}</th>" for v in variants)
    rows = []
    for metric in _metric_rows(result):
        cells = []
        for v in variants:
            value = result.summary[v].metrics.get(metric)
            verdict = _verdict(result, v, metric)
            cls = "" if verdict is None else "ok" if verdict else "bad"
            cells.append(f'<td class="num {cls}">{_fmt(value, metric)}</td>')
        spec = _threshold_spec(result, metric)
        rows.append(f"<tr><td>{_e(metric)}</td>{''.join(cells)}<td>{_e(spec)}</td></tr>")
    counts = "".join(
        f'<td class="num">{s.passed}/{s.cases} passed, {s.errors} errors</td>'
        for s in result.summary.values()
    )
    rows.append(f"<tr><td>cases</td>{counts}<td></td></tr>")
    return (
        f'<table id="summary"><thead><tr><th>metric</th>{head}<th>threshold</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _comparison(result: EvalResult) -> str:
    cmp = result.comparison
    if cmp is None:
        return '<p class="muted">No baseline: run with --baseline RESULT.json to compare.</p>'
    rows = []
    for d in cmp.metrics:
        delta = d.delta
        cls = "bad" if d.regressed else ""
        text = "—" if delta is None else f"{delta:+.4g}"
        rows.append(
            f'<tr><td>{_e(d.metric)}</td><td class="num">{_fmt(d.baseline, d.metric)}</td>'
            f'<td class="num">{_fmt(d.current, d.metric)}</td>'
            f'<td class="num {cls}">{_e(text)}</td></tr>'
        )
    flips = "".join(
        f"<p><b>{label}</b> ({len(cases)}): {_e(', '.join(cases))}</p>"
        for label, cases in (
            ("Newly failing", cmp.newly_failing),
            ("Newly passing", cmp.newly_passing),
        )
        if cases
    )
    return (
        f'<p class="muted">Baseline: {_e(cmp.baseline_suite)}, run {_e(cmp.baseline_started_at)}'
        f"; tolerance {cmp.tolerance:g}.</p>"
        f'<table id="diff"><thead><tr><th>metric</th><th>baseline</th><th>this run</th>'
        f"<th>delta</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{flips}"
    )


def _short_json(value: Any, limit: int = 600) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _case_rows(result: EvalResult) -> str:
    rows = []
    for c in result.cases:
        expected = set(c.expected_sources)
        sources = "".join(
            f'<div class="src">[{s.index if s.index is not None else "?"}] '
            + (
                f"<b>{_e(s.title or s.id)}</b>"
                if expected & {s.id, s.title, Path(s.source or "").name}
                else _e(s.title or s.id)
            )
            + "</div>"
            for s in c.sources[:8]
        )
        if c.answer and not (isinstance(c.output, list) and c.sources):
            output = c.answer
        elif isinstance(c.output, list) and c.sources:
            output = f"{len(c.output)} documents (see sources)"
        else:
            output = _short_json(c.output)
        if c.error is not None:
            output = ""
        status = "pass" if c.passed else ("error" if c.error else "fail")
        failures = "<br>".join(_e(f) for f in c.failures)
        metrics = ", ".join(
            [f"{k}={v:.2f}" for k, v in c.scores.items()]
            + [f"{k}={'yes' if v else 'no'}" for k, v in c.assertions.items()]
            + [f"{k}={v}" for k, v in c.labels.items()]
        )
        expected_out = "" if c.expected_output is None else _short_json(c.expected_output, 200)
        rows.append(
            f'<tr class="{"passed" if c.passed else "failed"}">'
            f"<td>{_e(_case_label(result, c))}</td>"
            f'<td class="{"ok" if c.passed else "bad"}">{status}</td>'
            f"<td><pre>{_e(_short_json(c.inputs, 300))}</pre></td>"
            f"<td>{_e(output)}"
            + (f'<div class="muted">expected: {_e(expected_out)}</div>' if expected_out else "")
            + f"</td><td>{sources}</td><td>{failures}</td><td>{_e(metrics)}</td>"
            f'<td class="num">{c.latency_ms:.1f}</td><td class="num">{c.usage.total_tokens}</td>'
            "</tr>"
        )
    return "".join(rows)


def html_report(result: EvalResult) -> str:
    """The whole report as one self-contained HTML document."""
    verdict = "PASSED" if result.passed else "FAILED"
    missed = "".join(
        f'<li class="bad">threshold {_e(t.describe())}</li>' for t in result.failed_thresholds
    ) + "".join(f'<li class="bad">regression: {_e(r)}</li>' for r in result.regressions)
    graphs = ", ".join(f"{_e(v)} = {_e(g)}" for v, g in result.graphs.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>weft eval: {_e(result.suite)}</title><style>{_CSS}</style></head>
<body>
<h1>weft eval: {_e(result.suite)}<span class="badge {"pass" if result.passed else "fail"}"
id="verdict">{verdict}</span></h1>
<div class="muted">{_e(result.description)}</div>
<div class="muted">dataset {_e(result.dataset)} · graphs {graphs} · started {_e(result.started_at)}
· {result.duration_s:.1f} s · weft {_e(result.weft_version)}</div>
<ul>{missed}</ul>
<h2>Summary</h2>{_summary_table(result)}
<h2>Charts</h2>{_charts(result)}
<h2>Against the baseline</h2>{_comparison(result)}
<h2>Cases</h2>
<label><input type="checkbox" id="only-failing"> only failing cases</label>
<table id="cases"><thead><tr><th>case</th><th>status</th><th>inputs</th><th>output</th>
<th>sources</th><th>failures</th><th>metrics</th><th>ms</th><th>tokens</th></tr></thead>
<tbody>{_case_rows(result)}</tbody></table>
<script>{_JS}</script>
</body></html>
"""
