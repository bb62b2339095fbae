"""The runner: a suite's graphs over its dataset, with bounded concurrency, a cache, and repeats.

Each (variant, case, repeat) runs once with a :class:`~weft.core.usage.UsageTracker` and a probe
on the callbacks, which give its latency, token usage and cost, and the documents its last
retriever returned. An output is written to a diskcache-backed :class:`OutputCache` as soon as
its run finishes, keyed by graph, version, input and repeat, so a re-run is cheap and a run that
was interrupted resumes where it stopped. Errors are recorded on their case; the run goes on.
Evaluators always run afresh, so changing them never needs the graph again.

Example:
    >>> result = run_suite(find_suite("rag-chat"))  # doctest: +SKIP
    >>> result.passed, result.metrics()["contains"]  # doctest: +SKIP
    (True, 1.0)
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import inspect
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import diskcache
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel

from weft.core._database import database_of
from weft.core.callbacks import CallbackBridge, Handler, RunInfo
from weft.core.settings import Settings, get_settings
from weft.core.usage import UsageTracker
from weft.evals.dataset import Case
from weft.evals.evaluators import (
    EvaluationReason,
    Evaluator,
    EvaluatorContext,
    answer_text,
    output_sources,
)
from weft.evals.results import (
    CaseResult,
    EvalResult,
    Usage,
    VariantSummary,
    compare,
)
from weft.evals.suite import Suite, resolve_graph

__all__ = ["OutputCache", "arun_suite", "graph_version", "run_suite", "summarize"]


# -- cache --------------------------------------------------------------------------------------


def _stable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return json.loads(json.dumps(value, sort_keys=True, default=str))


class OutputCache:
    """Graph outputs on disk (diskcache), keyed by graph, version, input and repeat; with
    ``WEFT_DATABASE_URL``, :class:`~weft.evals._cache_postgres.PostgresOutputCache` keeps them
    in PostgreSQL instead.

    Only successful runs are stored. Each entry is committed when its run finishes, so a
    process killed mid-run loses at most the runs in flight.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._cache = diskcache.Cache(str(self.directory))

    @staticmethod
    def key(graph: str, version: str, inputs: Any, repeat: int) -> str:
        data = {"graph": graph, "version": version, "inputs": _stable(inputs), "repeat": repeat}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        value = self._cache.get(key)
        return value if isinstance(value, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> bool:
        """Store ``value``; False when it cannot be pickled (the run is then not cached)."""
        try:
            self._cache.set(key, value)
        except Exception:
            return False
        return True

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        self._cache.close()


def _open_cache(settings: Settings, directory: str | Path) -> OutputCache:
    """The cache ``settings`` name: PostgreSQL at ``database_url`` when set (JSON rows every
    process shares), else diskcache in ``directory``."""
    database = database_of(settings)
    if database is None:
        return OutputCache(directory)
    from weft.evals._cache_postgres import PostgresOutputCache

    return PostgresOutputCache(database)


def graph_version(graph: Runnable[Any, Any]) -> str:
    """A short fingerprint of a graph: its name, nodes, component types and edges.

    It changes when the graph's structure changes, not when the data behind a retriever does;
    set ``version:`` in the suite (or pass ``--no-cache``) after changing the data.
    """
    plan = getattr(graph, "plan", None)
    if plan is not None:
        data: Any = {
            "name": plan.name,
            "nodes": {n: _component_id(d) for n, d in sorted(plan.nodes.items())},
            "edges": {k: sorted(v) for k, v in sorted(plan.succs.items())},
            "branches": sorted(plan.branches),
        }
    else:
        data = {"runnable": _component_id(graph)}
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _component_id(node: Any) -> str:
    component = getattr(node, "component", node)
    cls = type(component)
    return f"{cls.__module__}.{cls.__qualname__}"


# -- one case -----------------------------------------------------------------------------------


class _Probe(Handler):
    """Times the top-level run and keeps what the last retriever returned."""

    def __init__(self) -> None:
        self.started: dict[UUID, float] = {}
        self.duration_ms: float | None = None
        self.documents: list[Document] | None = None

    def on_start(self, info: RunInfo, input: Any) -> None:
        if info.parent_run_id is None:
            self.started[info.run_id] = time.perf_counter()

    def on_end(self, info: RunInfo, output: Any) -> None:
        if info.run_id in self.started:
            self.duration_ms = (time.perf_counter() - self.started.pop(info.run_id)) * 1000
        if info.kind == "retriever" and isinstance(output, list):
            self.documents = [d for d in output if isinstance(d, Document)]

    def on_error(self, info: RunInfo, error: BaseException) -> None:
        if info.run_id in self.started:
            self.duration_ms = (time.perf_counter() - self.started.pop(info.run_id)) * 1000


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Document):
        return {"id": value.id, "page_content": value.page_content, "metadata": value.metadata}
    if isinstance(value, BaseMessage):
        return {"type": value.type, "content": value.content}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return json.loads(json.dumps(value, default=str))


def _describe_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclasses.dataclass
class _Job:
    variant: str
    graph: Runnable[Any, Any]
    graph_id: str
    version: str
    case: Case
    repeat: int


async def _invoke(job: _Job, timeout_s: float | None) -> dict[str, Any]:
    probe, tracker = _Probe(), UsageTracker()
    config: RunnableConfig = {"callbacks": [CallbackBridge([probe, tracker])]}
    start = time.perf_counter()
    error: str | None = None
    output: Any = None
    try:
        call = job.graph.ainvoke(job.case.inputs, config)
        output = await (asyncio.wait_for(call, timeout_s) if timeout_s else call)
    except asyncio.TimeoutError:
        error = f"TimeoutError: no output within {timeout_s:g} s"
    except Exception as exc:
        error = _describe_error(exc)
    wall_ms = (time.perf_counter() - start) * 1000
    total = tracker.total
    sources = output_sources(output)
    seen = output_sources(probe.documents) if probe.documents is not None else None
    if sources is None:
        sources = seen
    elif seen:
        # An output may carry only a snippet of each source; grounding checks need the text
        # the model was given, which the retriever returned.
        full = {s.id: s.text for s in seen}
        sources = [
            s.model_copy(update={"text": full[s.id]})
            if len(full.get(s.id, "")) > len(s.text)
            else s
            for s in sources
        ]
    return {
        "output": output,
        "error": error,
        "latency_ms": probe.duration_ms if probe.duration_ms is not None else wall_ms,
        "usage": Usage(
            input_tokens=total.input_tokens,
            output_tokens=total.output_tokens,
            total_tokens=total.total_tokens,
            cost_usd=tracker.cost(),
            estimated=total.estimated,
        ),
        "sources": sources or [],
    }


def _record(result: CaseResult, name: str, value: Any) -> None:
    if isinstance(value, EvaluationReason):
        if value.reason:
            result.reasons[name] = value.reason
        value = value.value
    if value is None:
        return
    if isinstance(value, bool):
        result.assertions[name] = value
    elif isinstance(value, int | float):
        result.scores[name] = float(value)
    elif isinstance(value, str):
        result.labels[name] = value
    else:
        result.assertions[name] = False
        result.reasons[name] = (
            f"evaluator returned a {type(value).__name__}; return a bool, number, str, "
            f"EvaluationReason, None or a mapping of those"
        )


async def _evaluate(
    evaluators: Sequence[Evaluator], ctx: EvaluatorContext, result: CaseResult
) -> None:
    for evaluator in evaluators:
        name = evaluator.metric_name()
        try:
            value: Any = evaluator.evaluate(ctx)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            result.assertions[name] = False
            result.reasons[name] = f"evaluator raised {_describe_error(exc)}"
            continue
        if isinstance(value, Mapping):
            for key, item in value.items():
                _record(result, str(key), item)
        else:
            _record(result, name, value)


async def _run_job(
    job: _Job, suite: Suite, store: OutputCache | None, semaphore: asyncio.Semaphore
) -> CaseResult:
    async with semaphore:
        key = OutputCache.key(job.graph_id, job.version, job.case.inputs, job.repeat)
        run = store.get(key) if store is not None else None
        cached = run is not None
        if run is None:
            run = await _invoke(job, suite.timeout_s)
            if store is not None and run["error"] is None:
                store.set(key, run)
    case = job.case
    result = CaseResult(
        case=case.name,
        variant=job.variant,
        repeat=job.repeat,
        inputs=_jsonable(case.inputs),
        expected_output=_jsonable(case.expected_output),
        expected_sources=case.relevant_ids,
        tags=list(case.tags),
        output=_jsonable(run["output"]),
        answer=answer_text(run["output"]) if run["error"] is None else "",
        sources=run["sources"],
        error=run["error"],
        latency_ms=round(run["latency_ms"], 3),
        usage=run["usage"],
        cached=cached,
    )
    if result.error is None:
        ctx = EvaluatorContext(
            case=case,
            output=run["output"],
            duration_ms=run["latency_ms"],
            usage=run["usage"],
            sources=list(run["sources"]),
        )
        await _evaluate(suite.evaluators, ctx, result)
    return result


# -- summary ------------------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(
    variant: str, graph: str, results: Sequence[CaseResult], order: Sequence[str] = ()
) -> VariantSummary:
    """Aggregate one variant's results. A case that raised scores 0 on every metric.

    Metrics come in ``order`` (the evaluators' names), then any others as first seen.
    """
    names: dict[str, None] = dict.fromkeys(order)
    for r in results:
        names.update(dict.fromkeys([*r.scores, *r.assertions]))
    metrics: dict[str, float] = {}
    seen = {n for r in results for n in (*r.scores, *r.assertions)}
    for name in (n for n in names if n in seen):
        values = [x for r in results if (x := r.value(name)) is not None]
        metrics[name] = sum(values) / len(values) if values else 0.0
    n = len(results) or 1
    errors = sum(r.error is not None for r in results)
    latencies = [r.latency_ms for r in results]
    metrics["pass_rate"] = sum(r.passed for r in results) / n
    metrics["error_rate"] = errors / n
    metrics["latency_p50_ms"] = round(_percentile(latencies, 0.5), 3)
    metrics["latency_p95_ms"] = round(_percentile(latencies, 0.95), 3)
    metrics["tokens_per_case"] = sum(r.usage.total_tokens for r in results) / n
    metrics["cost_usd"] = sum(r.usage.cost_usd for r in results)
    labels: dict[str, dict[str, int]] = {}
    for r in results:
        for name, label in r.labels.items():
            counts = labels.setdefault(name, {})
            counts[label] = counts.get(label, 0) + 1
    return VariantSummary(
        variant=variant,
        graph=graph,
        cases=len(results),
        errors=errors,
        passed=sum(r.passed for r in results),
        metrics=metrics,
        labels=labels,
    )


# -- the run ------------------------------------------------------------------------------------


def _suite_settings(suite: Suite, settings: Settings) -> Settings:
    """The settings the suite's graphs run with: the suite's own knowledge base, ingested when
    empty, in a data dir of its own, or the demo one in ``settings.data_dir``."""
    # The registry's shared KnowledgeBase, so the suite's graphs see what was ingested.
    from weft.graphs.registry import knowledge_base

    folder = suite.knowledge_base_dir()
    if folder is not None:
        settings = settings.model_copy(
            update={"data_dir": settings.data_dir / "suites" / folder.name}
        )
        kb = knowledge_base(settings)
        if kb.is_empty():
            kb.ingest([folder], progress=False)
    elif suite.knowledge_base == "demo":
        knowledge_base(settings).ensure_demo()
    return settings


class _Progress:
    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self._progress: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._progress.add_task(label, total=total)

    def __enter__(self) -> _Progress:
        if self._progress is not None:
            self._progress.start()
        return self

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


async def arun_suite(
    suite: Suite,
    *,
    settings: Settings | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    concurrency: int | None = None,
    repeats: int | None = None,
    progress: bool = False,
    baseline: EvalResult | None = None,
    tolerance: float = 0.0,
    on_result: Callable[[CaseResult], None] | None = None,
) -> EvalResult:
    """Run ``suite`` and return its result, thresholds checked (and compared to ``baseline``).

    Args:
        settings: where the knowledge base and the cache live (``settings.data_dir``).
        cache: reuse and store graph outputs; ``cache_dir`` defaults to
            ``<data_dir>/evals/cache``. With ``settings.database_url`` they are kept in
            PostgreSQL instead (JSON rows; an output that is not JSON is not cached).
        concurrency, repeats: override the suite's.
        progress: show a progress bar on stderr.
        baseline: a previous result to compare with; regressions fail the result.
        tolerance: how much worse a metric may get before it counts as a regression.
        on_result: called with each case result as it finishes.
    """
    settings = settings or get_settings()
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    store_dir = cache_dir or settings.data_dir / "evals" / "cache"
    settings = _suite_settings(suite, settings)
    dataset = suite.load_dataset()
    variants = suite.variants()
    graphs = {v: resolve_graph(ref, settings) for v, ref in variants.items()}
    graph_ids = {
        v: ref if isinstance(ref, str) else str(getattr(g, "name", None) or type(g).__name__)
        for (v, ref), g in zip(variants.items(), graphs.values(), strict=True)
    }
    versions = {v: suite.version or graph_version(g) for v, g in graphs.items()}
    jobs = [
        _Job(v, graphs[v], graph_ids[v], versions[v], case, r)
        for v in graphs
        for case in dataset.cases
        for r in range(repeats or suite.repeats)
    ]
    store = _open_cache(settings, store_dir) if cache else None
    semaphore = asyncio.Semaphore(concurrency or suite.concurrency)
    results: list[CaseResult] = []
    try:
        with _Progress(progress, len(jobs), suite.name) as bar:
            for done in asyncio.as_completed([_run_job(j, suite, store, semaphore) for j in jobs]):
                result = await done
                results.append(result)
                bar.advance()
                if on_result is not None:
                    on_result(result)
    finally:
        if store is not None:
            store.close()
    position = {(j.variant, j.case.name, j.repeat): i for i, j in enumerate(jobs)}
    results.sort(key=lambda r: position[r.key])
    order = [e.metric_name() for e in suite.evaluators]
    summary = {
        v: summarize(v, graph_ids[v], [r for r in results if r.variant == v], order) for v in graphs
    }
    from weft import __version__

    out = EvalResult(
        suite=suite.name,
        description=suite.description,
        dataset=dataset.name,
        graphs=graph_ids,
        versions=versions,
        started_at=started.isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - t0, 3),
        weft_version=__version__,
        cases=results,
        summary=summary,
        thresholds=suite.check(summary),
    )
    if baseline is not None:
        out.comparison = compare(out, baseline, tolerance=tolerance)
    return out


def run_suite(suite: Suite, **kwargs: Any) -> EvalResult:
    """:func:`arun_suite` from sync code (it starts an event loop)."""
    return asyncio.run(arun_suite(suite, **kwargs))
