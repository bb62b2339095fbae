"""Ready chains: typed components the ready graphs are built from, each usable as a graph node.

* :mod:`weft.chains.condense`: :func:`condense_question`, a follow-up to a standalone question.
* :mod:`weft.chains.citations`: :func:`answer_with_citations`, an answer citing its sources.
* :mod:`weft.chains.structured`: :func:`extract_structured`, text to a pydantic model.
* :mod:`weft.chains.classify`: :func:`classify`, text to one of a set of labels, with a score
  and reasons.
* :mod:`weft.chains.summarize`: :func:`summarize`, map-reduce over documents under a budget.

Each works offline with a documented heuristic or extractive fallback and uses the chat model
when one is configured.
"""

from weft.chains.citations import CitationRequest, CitedAnswer, answer_with_citations
from weft.chains.classify import Classification, ClassificationError, classify
from weft.chains.condense import Condensed, CondenseInput, Turn, condense_question
from weft.chains.structured import extract_structured
from weft.chains.summarize import Summary, summarize

__all__ = [
    "CitationRequest",
    "CitedAnswer",
    "Classification",
    "ClassificationError",
    "CondenseInput",
    "Condensed",
    "Summary",
    "Turn",
    "answer_with_citations",
    "classify",
    "condense_question",
    "extract_structured",
    "summarize",
]
