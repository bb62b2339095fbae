"""Suites: a graph (or several, side by side), a dataset, evaluators and pass thresholds.

A suite is a YAML file or a :class:`Suite` built in Python. In YAML::

    name: rag-chat
    description: RAG chat over the bundled knowledge base
    graph: rag                       # a registered name, or module:attr
    dataset: rag_chat.yaml           # relative to this file; .jsonl, .yaml, .csv or a BEIR folder
    knowledge_base: demo             # ingest the bundled knowledge base first if it is missing
                                     # (or a folder of documents, relative to this file)
    evaluators:
      - Contains
      - AnswerSupported: {min_overlap: 0.6}
      - mypackage.evals:ShortAnswer  # your own, by import path
    thresholds:
      contains: 0.9                  # at least (metrics where lower is better: at most)
      latency_p95_ms: "<= 2000"

``graphs: {bm25: ..., hybrid: ...}`` instead of ``graph:`` runs several variants over the same
cases; their metrics are named ``variant/metric`` and a threshold without a prefix applies to
every variant.

A graph reference is a name from :func:`weft.graphs.registry.default_graphs`, or ``module:attr``
naming a compiled graph (any Runnable) or a factory that returns one; a factory may take the
:class:`~weft.core.settings.Settings` as a parameter named ``settings``.

Example:
    >>> from weft.evals import Case, Contains, Dataset
    >>> suite = Suite(name="s", graph="weft.graphs.demo:build_demo_graph",
    ...               dataset=Dataset(cases=[Case(inputs="What does compile check?",
    ...                                           expected_output="every edge")]),
    ...               evaluators=[Contains()], thresholds={"contains": 1.0})
    >>> suite.variants()
    {'weft.graphs.demo:build_demo_graph': 'weft.graphs.demo:build_demo_graph'}
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml
from langchain_core.runnables import Runnable

from weft.core.settings import Settings
from weft.evals.dataset import Dataset, DatasetError, _read_text, load_dataset
from weft.evals.evaluators import BUILTIN, Evaluator
from weft.evals.results import ThresholdCheck, VariantSummary, lower_is_better

__all__ = [
    "RUN_METRICS",
    "SUITES_DIR",
    "GraphRef",
    "Suite",
    "SuiteError",
    "find_suite",
    "load_suite",
    "parse_threshold",
    "resolve_graph",
    "shipped_suites",
]

SUITES_DIR = Path(__file__).parent / "suites"
"""Where the shipped suites live (inside the installed package)."""

GraphRef = Any
"""A registered name, ``"module:attr"``, a Runnable, or a factory returning one."""

RUN_METRICS = (
    "pass_rate",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "tokens_per_case",
    "cost_usd",
)
"""The metrics the runner reports for every variant, whatever the evaluators."""

_KEYS = {
    "name",
    "description",
    "graph",
    "graphs",
    "dataset",
    "evaluators",
    "thresholds",
    "repeats",
    "concurrency",
    "timeout_s",
    "version",
    "knowledge_base",
}


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SuiteError(DatasetError):
    """A suite file is malformed, or names a graph, dataset or evaluator that does not exist."""


@dataclass
class Suite:
    """A suite to run. See the module docs for the fields and the YAML form."""

    name: str
    dataset: Dataset | str | Path
    evaluators: list[Evaluator] = field(default_factory=list)
    graph: GraphRef = None
    graphs: dict[str, GraphRef] = field(default_factory=dict)
    thresholds: dict[str, float | str] = field(default_factory=dict)
    description: str = ""
    repeats: int = 1
    concurrency: int = 4
    timeout_s: float | None = None
    version: str | None = None
    """Part of the output cache key; by default a fingerprint of each graph's structure."""
    knowledge_base: str | None = None
    """``"demo"``: ingest the bundled knowledge base into the data dir first when it is empty.
    A folder (relative to the suite's file): the suite runs over its own knowledge base of that
    folder's documents, kept in ``<data_dir>/suites/<folder name>`` and ingested when empty."""

    def knowledge_base_dir(self) -> Path | None:
        """The folder of documents this suite's knowledge base holds; None for the demo or none."""
        if self.knowledge_base in (None, "demo"):
            return None
        folder = Path(self.knowledge_base)
        if not folder.is_absolute() and self.path is not None:
            folder = self.path.parent / folder
        return folder

    path: Path | None = None
    """The YAML file this suite was loaded from; relative dataset paths start there."""

    def __post_init__(self) -> None:
        if (self.graph is None) == (not self.graphs):
            raise SuiteError(f"suite {self.name!r}: give exactly one of graph= or graphs=")
        if not _NAME.match(self.name):
            raise SuiteError(
                f"suite name {self.name!r}: use letters, digits, '.', '_' and '-' only, starting "
                "with a letter or digit (it names the suite's report folder)"
            )
        if self.repeats < 1 or self.concurrency < 1:
            raise SuiteError(f"suite {self.name!r}: repeats and concurrency must be at least 1")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise SuiteError(f"suite {self.name!r}: timeout_s must be more than 0 seconds")
        for metric, spec in self.thresholds.items():
            parse_threshold(metric, spec, where=f"suite {self.name!r}")
            # A misspelt metric is an error now, not a failed threshold after the whole run.
            self.check_metric(metric, where=f"threshold {metric!r}")

    def variants(self) -> dict[str, GraphRef]:
        """Variant name -> graph reference; one variant named after its graph without graphs=."""
        if self.graphs:
            return dict(self.graphs)
        return {_ref_name(self.graph): self.graph}

    def load_dataset(self) -> Dataset:
        if isinstance(self.dataset, Dataset):
            return self.dataset
        p = Path(self.dataset)
        if not p.is_absolute() and self.path is not None:
            p = self.path.parent / p
        return load_dataset(p)

    def metric_names(self) -> list[str] | None:
        """The metrics a run reports per variant, or None when they cannot be known before it
        runs: an evaluator of your own may report any names, by returning a mapping."""
        builtin = set(BUILTIN.values())
        if any(type(e) not in builtin for e in self.evaluators):
            return None
        return [*dict.fromkeys(e.metric_name() for e in self.evaluators), *RUN_METRICS]

    def check_metric(self, metric: str, *, where: str) -> None:
        """Raise :class:`SuiteError` when ``metric`` (``variant/`` prefix allowed) names a
        variant or a metric that no run of this suite reports."""
        variant, _, bare = metric.rpartition("/")
        variants = list(self.variants())
        if variant and variant not in variants:
            raise SuiteError(
                f"{where}: suite {self.name!r} has no variant {variant!r}; its variants are "
                f"{variants}"
            )
        names = self.metric_names()
        if names is not None and bare not in names:
            per = f", each alone or as 'variant/metric' for {variants}" if len(variants) > 1 else ""
            raise SuiteError(
                f"{where}: suite {self.name!r} reports no metric {bare!r}; its metrics are "
                f"{names}{per}"
            )

    def check(self, summaries: Mapping[str, VariantSummary]) -> list[ThresholdCheck]:
        """Check the thresholds against a run's per-variant summaries."""
        several = len(summaries) > 1
        checks = []
        for metric, spec in self.thresholds.items():
            op, value = parse_threshold(metric, spec)
            variant, _, bare = metric.rpartition("/")
            targets = [variant] if variant else list(summaries)
            for v in targets:
                actual = summaries[v].metrics.get(bare) if v in summaries else None
                ok = actual is not None and (actual >= value if op == ">=" else actual <= value)
                name = f"{v}/{bare}" if several or variant else bare
                checks.append(
                    ThresholdCheck(metric=name, op=op, value=value, actual=actual, passed=ok)
                )
        return checks


def _ref_name(ref: Any) -> str:
    if isinstance(ref, str):
        return ref
    return str(getattr(ref, "name", None) or getattr(ref, "__name__", None) or type(ref).__name__)


_THRESHOLD = re.compile(r"^\s*(>=|<=)?\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*$")


def parse_threshold(metric: str, spec: float | str, *, where: str = "") -> tuple[str, float]:
    """``(op, value)`` from ``0.8``, ``">= 0.8"`` or ``"<= 500"``; a bare number means at
    least, or at most for metrics where lower is better (latency, tokens, cost, errors)."""
    if isinstance(spec, bool) or not isinstance(spec, int | float | str):
        raise SuiteError(f"{where}: threshold {metric}: want a number or '>= N' / '<= N'")
    if isinstance(spec, str):
        m = _THRESHOLD.match(spec)
        if not m:
            raise SuiteError(
                f"{where}: threshold {metric}: {spec!r} is not a number, '>= N' or '<= N'"
            )
        op = m.group(1) or ("<=" if lower_is_better(metric) else ">=")
        return op, float(m.group(2))
    return ("<=" if lower_is_better(metric) else ">="), float(spec)


# -- graphs -------------------------------------------------------------------------------------


def _import(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SuiteError(f"graph {ref!r}: cannot import {module_name!r} ({exc})") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SuiteError(f"graph {ref!r}: {module_name} has no attribute {attr!r}") from None
    return obj


def _call_factory(factory: Callable[..., Any], settings: Settings, ref: str) -> Any:
    try:
        params: dict[str, inspect.Parameter] = dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        params = {}
    if "settings" in params:
        return factory(settings=settings)
    required = [
        p
        for p in params.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise SuiteError(
            f"graph {ref!r} is a factory with required parameters {[p.name for p in required]}; "
            f"point at a compiled graph, or a factory taking no arguments or 'settings'"
        )
    return factory()


def _registered(settings: Settings) -> Mapping[str, Any]:
    try:
        registry = importlib.import_module("weft.graphs.registry")
    except ImportError:
        return {}
    graphs: Mapping[str, Any] = registry.default_graphs(settings)
    return graphs


def resolve_graph(ref: GraphRef, settings: Settings) -> Runnable[Any, Any]:
    """The runnable a graph reference names (see the module docs).

    Raises:
        SuiteError: the module, attribute or registered name does not exist, or it is not a
            Runnable; the message lists the registered names.
    """
    where = _ref_name(ref)
    obj = ref
    if isinstance(ref, str):
        if ":" in ref:
            obj = _import(ref)
        else:
            graphs = _registered(settings)
            if ref not in graphs:
                names = sorted(graphs) or "none yet"
                raise SuiteError(
                    f"graph {ref!r} is not a registered graph (registered: {names}); name one "
                    f"of those or give an import path 'package.module:attribute'"
                )
            obj = graphs[ref]
    if not isinstance(obj, Runnable) and callable(obj):
        obj = _call_factory(obj, settings, where)
    if not isinstance(obj, Runnable):
        raise SuiteError(
            f"graph {where!r} is a {type(obj).__name__}, not a compiled graph or Runnable"
        )
    return obj


# -- loading ------------------------------------------------------------------------------------


def _parameter_problems(cls: type[Evaluator], params: Mapping[str, Any]) -> list[str]:
    """What is wrong with the parameters an evaluator dataclass is given: names it does not
    take, and values its annotations refuse, checked strictly: YAML has already typed them, so
    ``k: abc`` or ``case_sensitive: "no"`` is a mistake to report, not a value to convert."""
    if not dataclasses.is_dataclass(cls):
        return []
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # annotations that do not resolve: the constructor is the only check
        return []
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [repr(k) for k in params if k not in known]
    wrong = []
    if unknown:
        takes = ", ".join(known) or "none"
        wrong.append(f"unknown parameter {', '.join(unknown)}; its parameters are {takes}")
    for f in dataclasses.fields(cls):
        if f.name not in params or f.name not in hints:
            continue
        try:
            pydantic.TypeAdapter(hints[f.name]).validate_python(params[f.name], strict=True)
        except pydantic.ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            wrong.append(f"{f.name}={params[f.name]!r}: {reason[:1].lower()}{reason[1:]}")
        except pydantic.PydanticUserError:  # a type pydantic cannot check
            continue
    return wrong


def _evaluator(spec: Any, where: str) -> Evaluator:
    params: Any
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping) and len(spec) == 1:
        [(name, params)] = spec.items()
        params = params or {}
        if not isinstance(params, Mapping):
            raise SuiteError(f"{where}: evaluator {name}: parameters must be a mapping")
    else:
        raise SuiteError(f"{where}: an evaluator is a name, or {{Name: {{param: value}}}}")
    if ":" in name:
        cls = _import(name)
    elif name in BUILTIN:
        cls = BUILTIN[name]
    else:
        raise SuiteError(
            f"{where}: unknown evaluator {name!r}; built-in ones are {sorted(BUILTIN)}, or name "
            f"your own as 'package.module:Class'"
        )
    if not (isinstance(cls, type) and issubclass(cls, Evaluator)):
        raise SuiteError(f"{where}: {name!r} is not a weft.evals.Evaluator subclass")
    wrong = _parameter_problems(cls, params)
    if wrong:
        raise SuiteError(f"{where}: evaluator {name}: {'; '.join(wrong)}")
    try:
        return cls(**dict(params))
    except Exception as exc:
        raise SuiteError(f"{where}: evaluator {name}: {exc}") from None


def load_suite(path: str | Path) -> Suite:
    """Load a suite from a YAML file.

    Raises:
        SuiteError: the file is missing, not UTF-8 or not YAML, has unknown keys, or names an
            unknown evaluator.
    """
    p = Path(path)
    if not p.is_file():
        raise SuiteError(f"suite file {p} does not exist")
    try:
        data = yaml.safe_load(_read_text(p, SuiteError))
    except yaml.YAMLError as exc:
        raise SuiteError(f"{p}: not valid YAML ({exc})") from None
    if not isinstance(data, Mapping):
        raise SuiteError(f"{p}: a suite is a mapping with name, graph, dataset and evaluators")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise SuiteError(f"{p}: unknown keys {unknown}; a suite has {sorted(_KEYS)}")
    if "dataset" not in data:
        raise SuiteError(f"{p}: a suite needs 'dataset'")
    where = str(p)
    listed = data.get("evaluators") or []
    if not isinstance(listed, list):
        raise SuiteError(f"{p}: 'evaluators' is a list, e.g. evaluators: [Contains, Refusal]")
    evaluators = [_evaluator(e, where) for e in listed]
    graphs = data.get("graphs") or {}
    thresholds = data.get("thresholds") or {}
    if not isinstance(graphs, Mapping) or not isinstance(thresholds, Mapping):
        raise SuiteError(f"{p}: 'graphs' and 'thresholds' are mappings")
    kb = data.get("knowledge_base")
    if kb is not None and (not isinstance(kb, str) or not kb.strip()):
        raise SuiteError(f"{p}: knowledge_base: {kb!r}; give 'demo' or a folder of documents")
    if kb not in (None, "demo") and not (p.parent / str(kb)).is_dir():
        raise SuiteError(
            f"{p}: knowledge_base: {kb!r} is not a folder next to the suite; give 'demo' or a "
            f"folder of documents, relative to the suite's file"
        )
    try:
        return Suite(
            name=str(data.get("name") or p.stem),
            description=str(data.get("description") or ""),
            graph=data.get("graph"),
            graphs={str(k): v for k, v in graphs.items()},
            dataset=str(data["dataset"]),
            evaluators=evaluators,
            thresholds={str(k): v for k, v in thresholds.items()},
            repeats=int(data.get("repeats", 1)),
            concurrency=int(data.get("concurrency", 4)),
            timeout_s=float(data["timeout_s"]) if data.get("timeout_s") is not None else None,
            version=str(data["version"]) if data.get("version") is not None else None,
            knowledge_base=kb,
            path=p.resolve(),
        )
    except SuiteError as exc:
        raise SuiteError(f"{p}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise SuiteError(f"{p}: {exc}") from None


def shipped_suites() -> dict[str, Path]:
    """The suites that ship with weft, by name (the file name without ``.yaml``)."""
    return {p.stem: p for p in sorted(SUITES_DIR.glob("*.yaml"))}


def find_suite(name_or_path: str | Path) -> Suite:
    """Load a suite from a path, or a shipped suite by name.

    Raises:
        SuiteError: neither a file nor a shipped suite; the message lists the shipped ones.
    """
    p = Path(name_or_path)
    if p.is_file():
        return load_suite(p)
    shipped = shipped_suites()
    if str(name_or_path) in shipped:
        return load_suite(shipped[str(name_or_path)])
    raise SuiteError(
        f"suite {str(name_or_path)!r} is neither a file nor a shipped suite; shipped suites "
        f"are {sorted(shipped)} (weft eval list)"
    )
