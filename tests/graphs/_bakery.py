"""A two-file knowledge base about a bakery, for the strict answers' tests."""

from pathlib import Path

BAKERY = {
    "bakery.md": "# The Harbour Bakery\n\nThe Harbour Bakery was founded in 1990 by Anna Berg. "
    "It bakes rye bread every morning from 5 a.m.\n",
    "goods.md": "# Bread and rolls\n\nA rye loaf weighs 800 grams. Spelt rolls are sold in bags "
    "of six. The rolls are baked at 6 a.m.\n",
}
NEAR_MISS = "How much does a bag of spelt rolls weigh?"
"""Words alone take "bags of six" for the weight asked; read in context, "weigh" is missing."""


def write_bakery(folder: Path) -> list[Path]:
    """Write the bakery's files into ``folder``; their paths."""
    for name, text in BAKERY.items():
        (folder / name).write_text(text)
    return [folder / name for name in BAKERY]
