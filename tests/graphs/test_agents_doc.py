"""docs/agents.md's example runs offline and prints exactly what the page shows."""

from tests._docs import ROOT, examples, printed

PAGE = ROOT / "docs" / "agents.md"


def test_agents_page_example_prints_what_the_page_shows() -> None:
    [(code, expected)] = examples(PAGE)
    assert "approve=" in code and "book_table" in code and "calculator" in code
    assert printed(code, PAGE) == expected
