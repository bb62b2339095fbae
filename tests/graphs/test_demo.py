import io

from weft.cli import main
from weft.components.models import NO_ANSWER
from weft.core.stream import Chunk
from weft.graphs.demo import build_demo_graph


def test_demo_answers_with_a_cited_quote_from_its_passages() -> None:
    answer = build_demo_graph().invoke("What does compile check?")
    assert str(answer.content).startswith("Graph.compile checks every edge")
    assert "[1]" in str(answer.content)


def test_demo_says_when_it_has_no_answer() -> None:
    assert build_demo_graph().invoke("Who won the 1998 world cup?").content == NO_ANSWER


def test_demo_streams_the_answer_token_by_token() -> None:
    chunks = [e for e in build_demo_graph().events("How do tokens stream?") if isinstance(e, Chunk)]
    assert len(chunks) > 5 and all(c.path == ("model",) for c in chunks)


def test_cli_demo_prints_answer_and_sources() -> None:
    out = io.StringIO()
    assert main(["demo", "Does weft need an API key?"], out=out) == 0
    text = out.getvalue()
    assert "A: The extractive chat model needs no API key" in text
    assert "Sources:\n  [1] Offline" in text


def test_cli_without_a_command_prints_help_and_fails() -> None:
    out = io.StringIO()
    assert main([], out=out) == 2
    assert "demo" in out.getvalue()
