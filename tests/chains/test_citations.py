"""answer_with_citations: an extractive or model answer, citing only the sources it uses."""

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage

from tests.chains._recording import Recording
from weft.chains import CitationRequest, CitedAnswer, answer_with_citations
from weft.chains.citations import SYSTEM_PROMPT, cited_indices, cited_sources
from weft.components.models import NO_ANSWER
from weft.components.prompts import PackedSource
from weft.core.chain import Chain
from weft.core.stream import Chunk

_DOCS = [
    Document("Ferns grow best in shade. They need moist soil.", metadata={"source": "ferns.md"}),
    Document("Cacti store water in their stems.", metadata={"source": "cacti.md"}),
    Document("Tomatoes need six hours of sun a day.", metadata={"source": "tomatoes.md"}),
]


def test_offline_the_answer_quotes_and_cites_only_what_it_uses() -> None:
    out = answer_with_citations().invoke(CitationRequest("Where do cacti store water?", _DOCS))
    assert out.answer == "Cacti store water in their stems. [2]"
    assert [s.source for s in out.sources] == ["cacti.md"]
    assert [s.index for s in out.context.sources] == [1, 2, 3]
    assert out.usage["total_tokens"] > 0 and not out.fallback


def test_offline_a_question_the_documents_do_not_answer_is_refused_without_sources() -> None:
    out = answer_with_citations().invoke(CitationRequest("Who painted the Mona Lisa?", _DOCS))
    assert out.answer == NO_ANSWER and out.sources == []


def test_a_model_answers_from_the_numbered_sources_and_its_citations_pick_the_sources() -> None:
    model = Recording(messages=iter([AIMessage("Give them six hours of sun. [3]")]))
    out = answer_with_citations(model).invoke(CitationRequest("How much sun?", _DOCS))
    (prompt,) = model.prompts
    assert prompt[0].content == SYSTEM_PROMPT
    assert "[3] tomatoes.md: Tomatoes need six hours" in prompt[1].text
    assert prompt[1].text.endswith("Question: How much sun?")
    assert [s.source for s in out.sources] == ["tomatoes.md"]
    assert out.usage["estimated"] is True and out.usage["input_tokens"] > 0


def test_citations_of_sources_that_do_not_exist_name_no_source() -> None:
    sources = [PackedSource(index=1, source="a.md"), PackedSource(index=2, source="b.md")]
    assert cited_indices("x [9] y [2][2] z [1]") == [9, 2, 1]
    assert [s.source for s in cited_sources("x [9] y [2]", sources)] == ["b.md"]


def test_the_answer_streams_as_tokens_of_the_generate_step() -> None:
    chain = answer_with_citations()
    events = list(chain.events(CitationRequest("What do ferns need?", _DOCS)))
    tokens = "".join(e.chunk.text for e in events if isinstance(e, Chunk) and e.final)
    assert "They need moist soil. [1]" in tokens


def test_answer_with_citations_is_a_node_of_a_larger_chain() -> None:
    chain = Chain[CitationRequest, str]("ask").then(answer_with_citations())
    chain.then(lambda a: a.answer, input_type=CitedAnswer, output_type=str)
    assert chain.compile().invoke(CitationRequest("Do cacti store water?", _DOCS)).endswith("[2]")


@pytest.mark.parametrize("budget", [20, 3000])
def test_sources_are_packed_within_the_context_budget(budget: int) -> None:
    out = answer_with_citations(context_tokens=budget).invoke(
        CitationRequest("Where do cacti store water?", _DOCS)
    )
    assert out.context.tokens <= budget
