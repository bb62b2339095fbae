"""OpenTelemetry metrics as Prometheus text (exposition format 0.0.4), for a ``/metrics`` route.

Written here rather than taken from ``opentelemetry-exporter-prometheus`` because that package
pulls in ``prometheus_client`` and a global registry for what is a page of string formatting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    InMemoryMetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.util.types import AttributeValue

__all__ = ["CONTENT_TYPE", "PrometheusTextReader", "render_prometheus"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The ``Content-Type`` of what :func:`render_prometheus` returns."""

_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}
_BAD_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_BAD_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def _name(name: str, unit: str) -> str:
    out = _BAD_NAME.sub("_", name)
    suffix = _UNIT_SUFFIX.get(unit)
    if suffix and not out.endswith("_" + suffix):
        out += "_" + suffix
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(attrs: Iterable[tuple[str, AttributeValue]], extra: str = "") -> str:
    parts = [f'{_BAD_LABEL.sub("_", k)}="{_escape(str(v))}"' for k, v in sorted(attrs)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x)) if isinstance(x, float) and not x.is_integer() else str(int(x))


def render_prometheus(data: MetricsData | None) -> str:
    """Render collected metrics (cumulative temporality) as Prometheus text.

    Example:
        >>> render_prometheus(None)
        ''
    """
    if data is None:
        return ""
    lines: list[str] = []
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                d = metric.data
                if isinstance(d, Sum):
                    base = _name(metric.name, metric.unit or "")
                    counter = d.is_monotonic and (
                        d.aggregation_temporality == AggregationTemporality.CUMULATIVE
                    )
                    name = base + "_total" if counter and not base.endswith("_total") else base
                    lines.append(f"# HELP {name} {_escape(metric.description or metric.name)}")
                    lines.append(f"# TYPE {name} {'counter' if counter else 'gauge'}")
                    for p in d.data_points:
                        lines.append(
                            f"{name}{_labels((p.attributes or {}).items())} {_num(p.value)}"
                        )
                elif isinstance(d, Histogram):
                    name = _name(metric.name, metric.unit or "")
                    lines.append(f"# HELP {name} {_escape(metric.description or metric.name)}")
                    lines.append(f"# TYPE {name} histogram")
                    for hp in d.data_points:
                        attrs = list((hp.attributes or {}).items())
                        running = 0
                        bounds = [*hp.explicit_bounds, math.inf]
                        for bound, count in zip(bounds, hp.bucket_counts, strict=False):
                            running += count
                            le = f'le="{_num(bound)}"'
                            lines.append(f"{name}_bucket{_labels(attrs, le)} {running}")
                        lines.append(f"{name}_sum{_labels(attrs)} {_num(hp.sum)}")
                        lines.append(f"{name}_count{_labels(attrs)} {hp.count}")
                else:  # gauges
                    name = _name(metric.name, metric.unit or "")
                    lines.append(f"# TYPE {name} gauge")
                    for gp in getattr(d, "data_points", ()):
                        lines.append(
                            f"{name}{_labels((gp.attributes or {}).items())} {_num(gp.value)}"
                        )
    return "\n".join(lines) + "\n" if lines else ""


class PrometheusTextReader(InMemoryMetricReader):
    """A metric reader whose :meth:`text` is the ``/metrics`` page.

    Example:
        >>> from opentelemetry.sdk.metrics import MeterProvider
        >>> reader = PrometheusTextReader()
        >>> MeterProvider(metric_readers=[reader]).get_meter("x").create_counter("hits").add(2)
        >>> print(reader.text(), end="")
        # HELP hits_total hits
        # TYPE hits_total counter
        hits_total 2
    """

    def text(self) -> str:
        """Collect now and render as Prometheus text."""
        return render_prometheus(self.get_metrics_data())
