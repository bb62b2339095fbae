"""Per-node and per-call overhead of weft against raw LangGraph and plain Python.

Linear graphs of 2, 10 and 50 trivial typed lambdas are built three ways: with weft, directly in
LangGraph (``StateGraph``), and as plain Python calls. Each is run with ``invoke`` and streamed:
weft with ``events()`` (its typed events), LangGraph twice: in its default ``updates`` mode (one
event per node) and in ``tasks`` mode, which carries what weft's events do (each node's start with
its input and its finish with its output). These graphs make no chunk while a node runs, so
``events()`` runs them in the caller's thread; one more pair times the path of a graph that does
(a chat model, a lambda that yields): weft's ``events()`` on a worker thread against LangGraph's
``messages`` mode, which runs the nodes on its own threads so tokens come out as they are made.
The ``dag`` rows run the same weft graphs on the DAG executor (``compile(executor="dag")``,
what ``auto`` picks for them; the other weft rows name ``executor="langgraph"``), and ``lcel
invoke`` runs the same steps as an LCEL ``RunnableSequence`` of ``RunnableLambda`` steps.
Three more rows run the same weft graphs with a
callback handler that does nothing (the cost of reporting runs at all), with the OpenTelemetry
handler exporting to an in-memory exporter through a ``SimpleSpanProcessor``, metrics included,
and with that handler's per-node latency histogram turned off (``node_metrics=False``). Rounds are
interleaved so drift hits every contender alike. Each sample is the mean of ``--reps`` calls and
the reported number is the best sample of the rounds, as ``timeit`` advises: on a shared machine
the noise only ever adds time. The per-node cost is the slope of time against node count (least
squares), and the fixed cost per call is its intercept.

Run: ``python -m bench.overhead [--rounds N] [--quick]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any, Literal

from langgraph.graph import END as LG_END
from langgraph.graph import START as LG_START
from langgraph.graph import StateGraph
from typing_extensions import TypedDict

from weft import END, START, Graph, Handler
from weft.core.tracing import OTelHandler

SIZES = (2, 10, 50)


def step(x: int) -> int:
    return x + 1


def build_weft(n: int, executor: Literal["langgraph", "dag"] = "langgraph") -> Any:
    g = Graph[int, int](f"bench{n}")
    prev = START
    for i in range(n):
        g.add_node(f"n{i}", step)
        g.add_edge(prev, f"n{i}")
        prev = f"n{i}"
    g.add_edge(prev, END)
    return g.compile(executor=executor)


def build_lcel(n: int) -> Any:
    """The same steps as an LCEL ``RunnableSequence`` of ``RunnableLambda``s."""
    from langchain_core.runnables import RunnableLambda, RunnableSequence

    steps = [RunnableLambda(step) for _ in range(n)]
    return RunnableSequence(*steps) if n > 1 else steps[0]


class _State(TypedDict):
    value: int


def _lg_node(state: _State) -> dict[str, int]:
    return {"value": step(state["value"])}


def build_langgraph(n: int) -> Any:
    sg = StateGraph(_State)
    prev = LG_START
    for i in range(n):
        sg.add_node(f"n{i}", _lg_node)
        sg.add_edge(prev, f"n{i}")
        prev = f"n{i}"
    sg.add_edge(prev, LG_END)
    return sg.compile()


def build_python(n: int) -> Callable[[int], int]:
    fns = [step] * n

    def run(x: int) -> int:
        for f in fns:
            x = f(x)
        return x

    return run


def _time(fn: Callable[[], Any], reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps * 1e6


def _fit(xs: list[int], ys: list[float]) -> tuple[float, float]:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return slope, my - slope * mx


def otel_handler(*, node_metrics: bool = True) -> tuple[OTelHandler, Callable[[], None]]:
    """The tracing handler on an in-memory exporter; the second value empties it."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return OTelHandler(provider, meters, node_metrics=node_metrics), spans.clear


def build_langgraph_otel(n: int, *, node_metrics: bool = True) -> tuple[Any, Callable[[], None]]:
    """The LangGraph graph of :func:`build_langgraph`, instrumented by hand the plainest way
    OpenTelemetry allows: each node function opens a span with the node's attributes (under
    one workflow span per run) and records its latency in a histogram, through the same kind
    of in-memory exporter and reader as :func:`otel_handler`. What OpenTelemetry itself costs
    per node, with no callback system, run tree or GenAI conventions around it: the peer of
    weft's tracing. The second value empties the exporter."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("peer")
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("peer")
    histogram = meter.create_histogram("node.duration", unit="s")

    def traced(name: str) -> Callable[[_State], dict[str, int]]:
        attrs = {"graph.name": f"bench{n}", "node.name": name, "component.kind": "lambda"}

        def node(state: _State) -> dict[str, int]:
            with tracer.start_as_current_span(f"node {name}", attributes=attrs):
                t0 = time.perf_counter()
                out = _lg_node(state)
                if node_metrics:
                    histogram.record(time.perf_counter() - t0, attrs)
                return out

        return node

    sg = StateGraph(_State)
    prev = LG_START
    for i in range(n):
        sg.add_node(f"n{i}", traced(f"n{i}"))
        sg.add_edge(prev, f"n{i}")
        prev = f"n{i}"
    sg.add_edge(prev, LG_END)
    graph = sg.compile()

    class _Run:
        def invoke(self, value: int) -> Any:
            with tracer.start_as_current_span(f"invoke_workflow bench{n}"):
                return graph.invoke({"value": value}, {"recursion_limit": 200})

    return _Run(), spans.clear


def on_worker(g: Any) -> list[Any]:
    """``events()`` as it runs a live graph (one with a chat model, a lambda that yields, a
    runnable): on a worker thread, so chunks reach the reader while their node runs. These
    graphs have no such node, so ``events()`` runs them in the caller's thread; this times the
    worker path on the same graphs."""
    return list(g._events_on_worker(g._input(0), 0, None))


def measure(rounds: int, reps: int) -> dict[str, dict[int, float]]:
    weft = {n: build_weft(n) for n in SIZES}
    dag = {n: build_weft(n, "dag") for n in SIZES}
    lcel = {n: build_lcel(n) for n in SIZES}
    noop_cfg: Any = {"callbacks": [Handler()]}
    otel, clear = otel_handler()
    otel_cfg: Any = {"callbacks": [otel]}
    spans_only, clear_spans_only = otel_handler(node_metrics=False)
    spans_only_cfg: Any = {"callbacks": [spans_only]}

    def traced(g: Any) -> Any:
        clear()  # keep memory flat; a list clear costs next to nothing
        return g.invoke(0, otel_cfg)

    def traced_spans_only(g: Any) -> Any:
        clear_spans_only()
        return g.invoke(0, spans_only_cfg)

    lg = {n: build_langgraph(n) for n in SIZES}
    py = {n: build_python(n) for n in SIZES}
    lg_limit = {"recursion_limit": 200}
    cases: dict[str, dict[int, Callable[[], Any]]] = {
        "weft invoke": {n: (lambda g=weft[n]: g.invoke(0)) for n in SIZES},
        "weft invoke + no-op handler": {
            n: (lambda g=weft[n]: g.invoke(0, noop_cfg)) for n in SIZES
        },
        "weft invoke + otel": {n: (lambda g=weft[n]: traced(g)) for n in SIZES},
        "weft invoke + otel, node metrics off": {
            n: (lambda g=weft[n]: traced_spans_only(g)) for n in SIZES
        },
        "langgraph invoke": {n: (lambda g=lg[n]: g.invoke({"value": 0}, lg_limit)) for n in SIZES},
        "weft invoke, dag": {n: (lambda g=dag[n]: g.invoke(0)) for n in SIZES},
        "weft invoke + otel, dag": {n: (lambda g=dag[n]: traced(g)) for n in SIZES},
        "lcel invoke": {n: (lambda g=lcel[n]: g.invoke(0)) for n in SIZES},
        "weft stream": {n: (lambda g=weft[n]: list(g.events(0))) for n in SIZES},
        "weft stream, worker thread": {n: (lambda g=weft[n]: on_worker(g)) for n in SIZES},
        "weft stream, dag": {n: (lambda g=dag[n]: list(g.events(0))) for n in SIZES},
        "langgraph stream": {
            n: (lambda g=lg[n]: list(g.stream({"value": 0}, lg_limit, stream_mode="updates")))
            for n in SIZES
        },
        "langgraph stream (tasks)": {
            n: (lambda g=lg[n]: list(g.stream({"value": 0}, lg_limit, stream_mode="tasks")))
            for n in SIZES
        },
        "langgraph stream (messages)": {
            n: (lambda g=lg[n]: list(g.stream({"value": 0}, lg_limit, stream_mode="messages")))
            for n in SIZES
        },
        "python": {n: (lambda f=py[n]: f(0)) for n in SIZES},
    }
    for fns in cases.values():  # warm up
        for f in fns.values():
            f()
    samples: dict[str, dict[int, list[float]]] = {k: {n: [] for n in SIZES} for k in cases}
    for _ in range(rounds):
        for n in SIZES:
            for name, fns in cases.items():
                samples[name][n].append(_time(fns[n], reps))
    return {k: {n: min(v) for n, v in d.items()} for k, d in samples.items()}


def table(results: dict[str, dict[int, float]]) -> str:
    rows = []
    fits = {k: _fit(list(SIZES), [v[n] for n in SIZES]) for k, v in results.items()}
    head = "| contender | " + " | ".join(f"{n} nodes µs" for n in SIZES)
    rows.append(head + " | µs/node | fixed µs/call |")
    rows.append("|" + "---|" * (len(SIZES) + 3))
    for k, v in results.items():
        slope, icpt = fits[k]
        cells = " | ".join(f"{v[n]:.1f}" for n in SIZES)
        rows.append(f"| {k} | {cells} | {slope:.2f} | {icpt:.1f} |")
    rows.append("")
    rows.append("| ratio weft / peer | per node | per call | 10 nodes total |")
    rows.append("|---|---|---|---|")
    pairs = [
        ("invoke", "weft invoke", "langgraph invoke"),
        ("stream vs updates", "weft stream", "langgraph stream"),
        ("stream vs tasks", "weft stream", "langgraph stream (tasks)"),
        (
            "stream on a worker vs messages",
            "weft stream, worker thread",
            "langgraph stream (messages)",
        ),
        ("dag invoke vs langgraph invoke", "weft invoke, dag", "langgraph invoke"),
        ("dag invoke vs lcel invoke", "weft invoke, dag", "lcel invoke"),
        ("dag stream vs langgraph tasks", "weft stream, dag", "langgraph stream (tasks)"),
    ]
    for label, ours, peer in pairs:
        ws, wi = fits[ours]
        ls, li = fits[peer]
        total = results[ours][10] / results[peer][10]
        rows.append(f"| {label} | {ws / ls:.3f} | {wi / li:.3f} | {total:.3f} |")
    return "\n".join(rows)


def _empty_all(built: dict[int, tuple[Any, Callable[[], None]]]) -> None:
    for _, empty in built.values():
        empty()


def tracing_cost(rounds: int) -> dict[str, tuple[float, float]]:
    """What each handler adds to weft invoke, and hand-written OpenTelemetry to LangGraph's,
    per node and per call, from paired samples.

    The difference between two 20 ms runs is small against this kind of machine's drift, so
    each round times every variant next to its plain runs (plain, variant, variant, plain, so
    what the second of two runs gains cancels out), on 10 and 50 nodes, and keeps the
    differences; per node is the slope of the median differences, per call their intercept.
    """
    sizes = (10, 50)
    weft = {n: build_weft(n) for n in sizes}
    lg = {n: build_langgraph(n) for n in sizes}
    lg_limit = {"recursion_limit": 200}
    otel, clear = otel_handler()
    spans_only, clear_spans_only = otel_handler(node_metrics=False)
    peer = {n: build_langgraph_otel(n) for n in sizes}
    peer_spans = {n: build_langgraph_otel(n, node_metrics=False) for n in sizes}

    def on_weft(cfg: Any) -> dict[int, Callable[[], Any]]:
        return {n: (lambda g=weft[n]: g.invoke(0, cfg)) for n in sizes}

    def on_peer(built: dict[int, tuple[Any, Callable[[], None]]]) -> dict[int, Callable[[], Any]]:
        return {n: (lambda g=built[n][0]: g.invoke(0)) for n in sizes}

    plain_weft = {n: (lambda g=weft[n]: g.invoke(0)) for n in sizes}
    dag = {n: build_weft(n, "dag") for n in sizes}
    plain_dag = {n: (lambda g=dag[n]: g.invoke(0)) for n in sizes}
    otel_dag, clear_dag = otel_handler()
    traced_dag = {n: (lambda g=dag[n]: g.invoke(0, {"callbacks": [otel_dag]})) for n in sizes}
    plain_lg = {n: (lambda g=lg[n]: g.invoke({"value": 0}, lg_limit)) for n in sizes}
    # name -> (plain runs, traced runs, what empties the exporters before the traced runs)
    variants: dict[str, tuple[Any, Any, Callable[[], None]]] = {
        "weft: no-op handler": (plain_weft, on_weft({"callbacks": [Handler()]}), lambda: None),
        "weft: otel": (plain_weft, on_weft({"callbacks": [otel]}), clear),
        "weft: otel, node metrics off": (
            plain_weft,
            on_weft({"callbacks": [spans_only]}),
            clear_spans_only,
        ),
        "weft on the dag executor: otel": (plain_dag, traced_dag, clear_dag),
        "peer: langgraph + hand-written otel": (
            plain_lg,
            on_peer(peer),
            lambda: _empty_all(peer),
        ),
        "peer: langgraph + hand-written otel, spans only": (
            plain_lg,
            on_peer(peer_spans),
            lambda: _empty_all(peer_spans),
        ),
    }
    diffs: dict[str, dict[int, list[float]]] = {k: {n: [] for n in sizes} for k in variants}
    for plain, traced, _ in variants.values():
        for n in sizes:
            plain[n]()
            traced[n]()

    def timed(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    for _ in range(rounds):
        for n in sizes:
            for name, (plain, traced, empty) in variants.items():
                # plain, variant, variant, plain: what running second gains cancels out
                base = timed(plain[n])
                empty()
                added = timed(traced[n]) + timed(traced[n])
                base += timed(plain[n])
                diffs[name][n].append((added - base) / 2 * 1e6)
    out = {}
    for name, by_size in diffs.items():
        d10, d50 = (statistics.median(by_size[n]) for n in sizes)
        per_node = (d50 - d10) / (sizes[1] - sizes[0])
        out[name] = (per_node, d10 - sizes[0] * per_node)
    return out


def tracing_table(cost: dict[str, tuple[float, float]]) -> str:
    rows = ["| added (paired) | µs/node | µs/call |", "|---|---|---|"]
    for name, (per_node, per_call) in cost.items():
        rows.append(f"| {name} | {per_node:.1f} | {per_call:.1f} |")
    alone = cost["weft: otel"][0] - cost["weft: no-op handler"][0]
    rows.append(f"| weft: otel handler alone (otel - no-op) | {alone:.1f} | |")
    rows.append("")
    rows.append("| ratio weft / hand-written otel | per node |")
    rows.append("|---|---|")
    for label, ours, theirs in (
        ("spans and node histogram", "weft: otel", "peer: langgraph + hand-written otel"),
        (
            "spans and node histogram, dag",
            "weft on the dag executor: otel",
            "peer: langgraph + hand-written otel",
        ),
        (
            "spans only",
            "weft: otel, node metrics off",
            "peer: langgraph + hand-written otel, spans only",
        ),
    ):
        rows.append(f"| {label} | {cost[ours][0] / cost[theirs][0]:.2f} |")
    return "\n".join(rows)


def per_call(rounds: int, sizes: tuple[int, ...] = (2, 10)) -> dict[int, dict[str, float]]:
    """Median µs per call of the streamed and invoked paths on small graphs, every contender
    timed once per round, one after another: on a loaded machine the median of many single calls
    is steadier than a fitted intercept."""
    lg_limit = {"recursion_limit": 200}
    out: dict[int, dict[str, float]] = {}
    for n in sizes:
        weft, dag, lg = build_weft(n), build_weft(n, "dag"), build_langgraph(n)
        cases: dict[str, Callable[[], Any]] = {
            "weft stream": lambda g=weft: list(g.events(0)),
            "weft stream, worker thread": lambda g=weft: on_worker(g),
            "weft stream, dag": lambda g=dag: list(g.events(0)),
            "weft invoke": lambda g=weft: g.invoke(0),
            "weft invoke, dag": lambda g=dag: g.invoke(0),
            "langgraph invoke": lambda g=lg: g.invoke({"value": 0}, lg_limit),
            "langgraph stream (tasks)": lambda g=lg: list(
                g.stream({"value": 0}, lg_limit, stream_mode="tasks")
            ),
        }
        for f in cases.values():
            f()
        samples: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(rounds):
            for name, f in cases.items():
                samples[name].append(_time(f, 1))
        out[n] = {k: statistics.median(v) for k, v in samples.items()}
    return out


def per_call_table(medians: dict[int, dict[str, float]]) -> str:
    sizes = list(medians)
    head = " | ".join(f"{n} nodes µs | / langgraph tasks | / langgraph invoke" for n in sizes)
    rows = [f"| contender (median) | {head} |", "|---" * (1 + 3 * len(sizes)) + "|"]
    for name in medians[sizes[0]]:
        cells = []
        for n in sizes:
            m = medians[n]
            cells.append(
                f"{m[name]:.0f} | {m[name] / m['langgraph stream (tasks)']:.2f} | "
                f"{m[name] / m['langgraph invoke']:.2f}"
            )
        rows.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--reps", type=int, default=20, help="calls per sample (default 20)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5 calls, for a smoke run")
    args = parser.parse_args(argv)
    rounds, reps = (3, 5) if args.quick else (args.rounds, args.reps)
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    print(table(measure(rounds, reps)))
    print()
    print(per_call_table(per_call(40 if args.quick else 400)))
    print()
    print(tracing_table(tracing_cost(10 if args.quick else 20 * rounds)))


if __name__ == "__main__":
    main()
