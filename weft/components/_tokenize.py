"""Text → BM25 tokens for English and CJK text, shared by the BM25 retriever and its benchmark."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

from bm25s.stopwords import STOPWORDS_EN

__all__ = ["ENGLISH_STOPWORDS", "Tokenizer", "s_stem"]

#: Lucene's English stopword list, the one bm25s uses, so scores stay comparable with bm25s.
ENGLISH_STOPWORDS: frozenset[str] = frozenset(STOPWORDS_EN)

# Han (incl. extension A and compatibility ideographs), kana and Hangul. CJK text has no spaces
# between words, so these runs are cut into character unigrams and bigrams instead of words.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")

# The word memo is bounded by bytes, so neither a long-running ingest of unbounded vocabulary
# nor queries of long distinct "words" (runs of letters with no space) can grow it for ever;
# runs longer than _MEMO_WORD are no words worth keeping.
_MEMO_BYTES = 4 * 2**20
_MEMO_WORD = 64


def _entry_size(word: str) -> int:
    # The key, a value at most as large, and the dict's slot for them.
    return 2 * sys.getsizeof(word) + 24


def s_stem(word: str) -> str:
    """Harman's "S" stemmer: fold English plurals onto their singular.

    It is deliberately weak (plurals only), so it never conflates unrelated words the way
    aggressive stemmers sometimes do.

    Example:
        >>> [s_stem(w) for w in ["queries", "boxes", "retrievers", "glass", "corpus"]]
        ['query', 'boxe', 'retriever', 'glass', 'corpus']
    """
    if len(word) <= 3 or not word.isascii():
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


class Tokenizer:
    """Split text into BM25 tokens.

    Words are lowercased, English stopwords dropped and plurals folded (both optional); runs of
    CJK characters become character unigrams plus bigrams, the usual substitute for a word
    segmenter in BM25.

    Example:
        >>> Tokenizer()("The retrievers ranked 东京大学 highly")
        ['retriever', 'ranked', '东', '京', '大', '学', '东京', '京大', '大学', 'highly']
    """

    def __init__(self, *, stopwords: Iterable[str] | None = ENGLISH_STOPWORDS, stem: bool = True):
        self.stopwords = frozenset(stopwords or ())
        self.stem = stem
        # Word → token (or None for a stopword); natural text repeats words a lot.
        self._memo: dict[str, str | None] = {}
        self.memo_bytes = 0

    def _word(self, raw: str) -> str | None:
        token = self._memo.get(raw, "")
        if token != "":
            return token
        word = raw.lower()
        result: str | None = None
        if word not in self.stopwords:
            result = s_stem(word) if self.stem else word
        if len(raw) <= _MEMO_WORD:
            size = _entry_size(raw)
            if self.memo_bytes + size > _MEMO_BYTES:
                self._memo.clear()
                self.memo_bytes = 0
            self._memo[raw] = result
            self.memo_bytes += size
        return result

    def __call__(self, text: str) -> list[str]:
        """Return the tokens of ``text`` in order (CJK bigrams follow their run's unigrams)."""
        tokens: list[str] = []
        append = tokens.append
        memo_get = self._memo.get
        for cjk, word in _TOKEN_RE.findall(text):
            if word:
                # The memo lookup is inlined: this loop is most of the cost of indexing.
                token = memo_get(word, "")
                if token == "":
                    token = self._word(word)
                if token is not None:
                    append(token)
            else:
                tokens.extend(cjk)
                tokens.extend(cjk[i : i + 2] for i in range(len(cjk) - 1))
        return tokens

    def config(self) -> dict[str, object]:
        """The settings that must match between indexing and querying (saved with an index)."""
        return {"stopwords": sorted(self.stopwords), "stem": self.stem}
