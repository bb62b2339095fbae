"""Health consultation: red-flag triage first, then specialist analyses in a compensating saga.

- ``triage.py``: :class:`Triager`, :class:`HealthInput`, :class:`Triage` and
  :func:`build_triage_graph`.
- ``rules.py``: the reviewed red-flag rules (``data/red_flags.yaml``) and what reads them.
- ``specialists.py``: the symptoms, risk-factors and care specialists over the bundled
  conditions base (``data/conditions.yaml``).
- ``consult.py``: the five-step consultation saga; ``services.py``: its local SQLite services.
- ``graph.py``: :func:`build_health_graph`, the ``health`` graph the server and CLI run.

The names load their module when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from weft.core._lazy import lazy_names

if TYPE_CHECKING:
    from weft.graphs.health.graph import Consultation, build_health_graph
    from weft.graphs.health.triage import HealthInput, Triage, Triager, build_triage_graph

__all__ = [
    "Consultation",
    "HealthInput",
    "Triage",
    "Triager",
    "build_health_graph",
    "build_triage_graph",
]

_HOME = {
    "Consultation": "graph",
    "HealthInput": "triage",
    "Triage": "triage",
    "Triager": "triage",
    "build_health_graph": "graph",
    "build_triage_graph": "triage",
}


__getattr__, __dir__ = lazy_names(__name__, _HOME, __all__, globals())
