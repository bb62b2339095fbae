"""A graph used by test_checkpoint: run in a child process that may die mid-run."""

import os
import sys
from pathlib import Path

from weft import END, START, Graph, thread

LOG = Path(sys.argv[2])


def step(name: str, crash: bool = False):  # type: ignore[no-untyped-def]
    def run(x: str) -> str:
        if crash and os.environ.get("CRASH") == "1":
            os._exit(17)  # the process dies: no cleanup, no exception
        with LOG.open("a") as f:
            f.write(name + "\n")
        return x + name

    run.__annotations__ = {"x": str, "return": str}
    return run


def build(db: str):  # type: ignore[no-untyped-def]
    g = Graph[str, str]("crashy")
    g.add_node("a", step("a")).add_node("b", step("b")).add_node("c", step("c", crash=True))
    g.add_edge(START, "a").add_edge("a", "b").add_edge("b", "c").add_edge("c", END)
    return g.compile(checkpointer=db)


if __name__ == "__main__":
    graph = build(sys.argv[1])
    mode = sys.argv[3]
    out = graph.invoke("", thread("t")) if mode == "start" else graph.resume(thread("t"))
    print(out)
