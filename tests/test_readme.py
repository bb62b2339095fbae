"""The README's examples run, and print exactly what the README says they print."""

import pytest

from tests._docs import ROOT, examples, printed

README = ROOT / "README.md"


def test_readme_has_examples_with_output() -> None:
    assert len(examples(README)) >= 2


@pytest.mark.parametrize(("code", "expected"), examples(README))
def test_readme_example_prints_what_the_readme_shows(code: str, expected: str) -> None:
    assert printed(code, README) == expected


def test_the_architecture_table_names_every_ready_graph_factory() -> None:
    import weft.graphs

    row = next(
        line for line in README.read_text().splitlines() if line.startswith("| `weft/graphs/`")
    )
    factories = [name for name in weft.graphs.__all__ if name.startswith("build_")]
    assert factories and [f for f in factories if f"`{f}`" not in row] == []
