"""The text memos on the question path hold a bounded number of bytes, however large and many
the distinct texts they see: the extractive model's term and sentence memos, and the BM25
tokenizer's word memo."""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from weft.components import models
from weft.components._memo import BytesMemo, size_of
from weft.components._tokenize import Tokenizer

MB = 2**20


def texts(seed: int, count: int, words: int, *, length: int = 8, sep: str = " ") -> list[str]:
    """``count`` distinct texts of ``words`` random words each, made cheaply."""
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        letters = rng.randbytes(words * length // 2).hex()
        made.append(sep.join(letters[i : i + length] for i in range(0, len(letters), length)))
    return made


def held_after(call: Callable[[str], Any], inputs: list[str]) -> int:
    """The bytes still allocated once ``call`` has seen a fresh copy of each input: what it
    keeps of them."""
    gc.collect()
    tracemalloc.start()
    try:
        for text in inputs:
            call(text[1:])  # a new string, allocated while traced
        gc.collect()
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("name", "budget", "inputs"),
    [
        # Texts of 1,000 words are kept until the budget is full; one of 20,000 is never kept.
        ("_terms", 4 * MB, lambda: texts(7, 60, 1000, length=40) + texts(8, 1, 20_000)),
        ("_sentences", 2 * MB, lambda: texts(9, 70, 500, length=80, sep=". ")),
    ],
)
def test_the_extractive_models_memos_keep_large_distinct_texts_within_their_budget(
    name: str, budget: int, inputs: Callable[[], list[str]]
) -> None:
    memo = getattr(models, name)
    memo.cache_clear()
    held = held_after(memo, inputs())
    assert held < budget + MB
    assert isinstance(memo, BytesMemo)
    assert 0 < memo.bytes <= budget
    memo.cache_clear()


def test_the_tokenizer_word_memo_is_bounded_by_bytes_and_keeps_no_long_runs() -> None:
    tokenizer = Tokenizer()
    runs = ["z" * 100_000 + str(i) for i in range(20)]  # "words" of 100 KB, with no space
    held = held_after(tokenizer, texts(10, 50, 1000, length=40) + runs)
    assert held < 4 * MB + MB
    assert tokenizer.memo_bytes <= 4 * MB
    assert tokenizer("the glassy weaves") == ["glassy", "weave"]


def test_a_bytes_memo_drops_the_least_recently_used_past_its_budget() -> None:
    calls: list[str] = []

    def shout(text: str) -> str:
        calls.append(text)
        return text.upper()

    memo = BytesMemo(shout, max_bytes=16 * size_of("a" * 100, "A" * 100))
    first, second = "a" * 100, "b" * 100
    memo(first)
    memo(second)
    memo(first)  # first is now the most recently used
    for i in range(15):
        memo(f"{i:03}" + "c" * 97)  # the budget fills up: second goes, first stays
    assert memo.bytes <= memo.max_bytes and len(memo) == 16
    calls.clear()
    memo(first)
    memo(second)
    assert calls == [second]
    assert memo(first * 30) == (first * 30).upper()  # over a sixteenth of the budget: not kept
    assert first * 30 not in memo._entries
