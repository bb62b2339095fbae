"""docs/tools.md's example runs offline and prints exactly what the page shows."""

from tests._docs import ROOT, examples, printed

PAGE = ROOT / "docs" / "tools.md"


def test_tools_page_example_prints_what_the_page_shows() -> None:
    [(code, expected)] = examples(PAGE)
    assert printed(code, PAGE) == expected
