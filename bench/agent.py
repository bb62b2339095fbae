"""The cost of an agent's loop: weft's ``build_react_agent`` against LangGraph's prebuilt
``create_react_agent``, in the same run.

Both run the same scripted three-step loop with the same scripted chat model and the same two
tools: the model calls both tools at once, the tool node runs the two calls in parallel, and the
model answers. Each contender takes three graph steps per run (model, tools, model); the table
reports microseconds per run and per step, and weft's cost relative to LangGraph's (goal: a
ratio of at most 1.0). ``invoke`` is timed, and streaming: weft's ``stream()`` (the answer's
tokens) against LangGraph's ``stream(stream_mode="messages")`` (every model token, with its
metadata). Rounds are interleaved so drift hits both alike; each sample is the mean of ``--reps``
runs and the reported number is the best sample, as ``timeit`` advises.

Run: ``python -m bench.agent [--rounds N] [--reps N] [--quick]``
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage

from weft.graphs.agent import build_react_agent
from weft.testing import ScriptedChatModel
from weft.tools import tool

STEPS = 3  # model, tools, model


@tool
def add(a: int, b: int) -> int:
    """Add two whole numbers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two whole numbers.

    Args:
        a: The first.
        b: The second.
    """
    return a * b


CALLS = AIMessage(
    "",
    tool_calls=[
        {"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"},
        {"name": "multiply", "args": {"a": 2, "b": 3}, "id": "c2"},
    ],
)
ANSWER = "Their sum is 5 and their product is 6."
QUESTION = {"messages": [("user", "Add and multiply 2 and 3.")]}


def model(runs: int) -> ScriptedChatModel:
    return ScriptedChatModel(replies=[CALLS, ANSWER] * runs)


def weft_agent(runs: int) -> Any:
    return build_react_agent(model(runs), [add, multiply])


def langgraph_agent(runs: int) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_react_agent is deprecated in LangGraph 1.x
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(model(runs), [add, multiply])


def weft_stream(agent: Any) -> None:
    for _ in agent.stream(QUESTION):
        pass


def langgraph_stream(agent: Any) -> None:
    for _ in agent.stream(QUESTION, stream_mode="messages"):
        pass


def check(agent: Any) -> None:
    out = agent.invoke(QUESTION)
    contents = [str(m.content) for m in out["messages"]]
    assert contents[-1] == ANSWER and "5" in contents and "6" in contents, contents


def sample(make: Callable[[int], Any], run: Callable[[Any], Any], reps: int) -> float:
    agent = make(reps)
    started = time.perf_counter()
    for _ in range(reps):
        run(agent)
    return (time.perf_counter() - started) / reps


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.agent")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 10 runs")
    args = parser.parse_args()
    rounds, reps = (2, 10) if args.quick else (args.rounds, args.reps)
    check(weft_agent(1))
    check(langgraph_agent(1))
    cases: dict[str, tuple[Callable[[int], Any], Callable[[Any], Any]]] = {
        "weft invoke": (weft_agent, lambda a: a.invoke(QUESTION)),
        "langgraph invoke": (langgraph_agent, lambda a: a.invoke(QUESTION)),
        "weft stream": (weft_agent, weft_stream),
        "langgraph stream": (langgraph_agent, langgraph_stream),
    }
    for make, run in cases.values():  # warm up imports and caches
        sample(make, run, 2)
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, (make, run) in cases.items():
            best[name] = min(best[name], sample(make, run, reps))
    print(f"python {platform.python_version()}, {rounds} rounds of {reps} runs, best round")
    print()
    print("| mode | weft µs/run | LangGraph µs/run | weft µs/step | LangGraph µs/step | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for mode in ("invoke", "stream"):
        w, lg = best[f"weft {mode}"] * 1e6, best[f"langgraph {mode}"] * 1e6
        print(
            f"| {mode} | {w:.0f} | {lg:.0f} | {w / STEPS:.0f} | {lg / STEPS:.0f} | {w / lg:.2f} |"
        )


if __name__ == "__main__":
    main()
