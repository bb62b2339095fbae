from __future__ import annotations

import random
from typing import Any, get_type_hints

import pytest
from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from typing_extensions import TypedDict

from tests.components._spy import spy_on_encode
from weft.components.models import format_sources, parse_sources
from weft.components.prompts import (
    ContextPacker,
    PackedContext,
    Truncate,
    _sentence_prefix,
    chat_prompt,
    pack_context,
    prompt_input_type,
    required_variables,
)
from weft.components.tokens import count_tokens, get_encoding, truncate_to_tokens
from weft.core.errors import ConfigurationError
from weft.core.types import is_assignable, missing_typeddict_keys


class QuestionOnly(TypedDict):
    question: str


class QuestionAndContext(TypedDict):
    question: str
    context: str


def test_chat_prompt_input_type_lists_required_variables_only() -> None:
    prompt = chat_prompt(
        ("system", "You are {persona}. Answer from:\n{context}"),
        MessagesPlaceholder("history", optional=True),
        ("human", "{question}"),
        partial={"persona": "terse"},
    )
    assert isinstance(prompt, ChatPromptTemplate)
    input_type = prompt_input_type(prompt)
    assert sorted(get_type_hints(input_type)) == ["context", "question"]
    assert sorted(input_type.__required_keys__) == ["context", "question"]
    assert required_variables(prompt) == ["context", "question"]
    assert prompt.invoke({"question": "q", "context": "c"}).to_messages()[0].content == (
        "You are terse. Answer from:\nc"
    )


def test_prompt_input_type_lets_the_compiler_find_a_missing_variable() -> None:
    input_type = prompt_input_type(chat_prompt(("human", "{context}\n\n{question}")))
    assert missing_typeddict_keys(QuestionOnly, input_type) == ["context"]
    assert not is_assignable(QuestionOnly, input_type)
    assert is_assignable(QuestionAndContext, input_type)


def test_chat_prompt_rejects_a_partial_for_an_unknown_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"\['persnoa'\].*\['question'\]"):
        chat_prompt(("human", "{question}"), partial={"persnoa": "x"})
    with pytest.raises(ConfigurationError, match="at least one message"):
        chat_prompt()


def _docs() -> list[Document]:
    return [
        Document(
            "Paris is the capital of France. It has two million inhabitants.",
            id="d1",
            metadata={"title": "Paris guide", "source": "paris.md", "score": 0.9},
        ),
        Document(
            "Berlin is the capital of Germany.",
            id="d2",
            metadata={"source": "berlin.md", "score": 0.7},
        ),
        Document(
            "Madrid is the capital of Spain. It lies on the Manzanares. It is sunny.",
            id="d3",
            metadata={"title": "Madrid", "score": "0.5"},
        ),
    ]


def test_packer_numbers_sources_in_the_format_the_extractive_model_reads() -> None:
    packed = pack_context(_docs(), max_tokens=1000)
    parsed = parse_sources(packed.text)
    assert [s.index for s in parsed] == [1, 2, 3]
    assert [s.title for s in parsed] == ["Paris guide", "berlin.md", "Madrid"]
    assert parsed[0].text == "Paris is the capital of France. It has two million inhabitants."
    assert parsed[1].text == "Berlin is the capital of Germany."
    assert packed.text.splitlines()[0].startswith("[1] Paris guide: Paris is")


def test_packer_keeps_each_sources_metadata() -> None:
    packed = pack_context(_docs(), max_tokens=1000)
    assert [(s.index, s.id, s.title, s.source, s.score) for s in packed.sources] == [
        (1, "d1", "Paris guide", "paris.md", 0.9),
        (2, "d2", None, "berlin.md", 0.7),
        (3, "d3", "Madrid", None, 0.5),
    ]
    assert not any(s.truncated for s in packed.sources)
    assert packed.dropped == 0


@pytest.mark.parametrize("budget", [5, 12, 20, 25, 30, 40, 60])
def test_packer_respects_the_token_budget(budget: int) -> None:
    packed = pack_context(_docs(), max_tokens=budget)
    assert packed.tokens == count_tokens(packed.text) if packed.text else packed.tokens == 0
    assert packed.tokens <= budget
    assert len(packed.sources) + packed.dropped == 3
    assert [s.index for s in packed.sources] == list(range(1, len(packed.sources) + 1))


def test_packer_cuts_the_last_source_after_a_whole_sentence() -> None:
    full = pack_context(_docs()[:1], max_tokens=1000)
    first_sentence = pack_context(
        [Document("Paris is the capital of France.", metadata={"title": "Paris guide"})], 1000
    )
    packed = pack_context(_docs()[:1], max_tokens=first_sentence.tokens + 3)
    assert packed.tokens < full.tokens
    assert packed.text == "[1] Paris guide: Paris is the capital of France."
    assert packed.sources[0].truncated
    assert packed.dropped == 0


def test_packer_token_mode_cuts_mid_sentence_and_drop_mode_drops() -> None:
    budget = pack_context(_docs()[:1], 1000).tokens - 4
    by_token = pack_context(_docs()[:1], budget, truncate="token")
    assert by_token.sources[0].truncated
    assert not by_token.text.endswith(".")
    assert by_token.tokens <= budget
    dropped = pack_context(_docs()[:1], budget, truncate="drop")
    assert dropped.text == "" and dropped.sources == [] and dropped.dropped == 1


def test_packer_drops_a_source_when_no_whole_sentence_fits_and_stops_there() -> None:
    docs = _docs()
    room_for_two = pack_context(docs[:2], 1000).tokens + 2
    packed = pack_context([docs[0], docs[1], docs[2], Document("Tiny.")], room_for_two)
    # Madrid does not fit and "Tiny." is ranked below it: packing stops at the first misfit.
    assert [s.id for s in packed.sources] == ["d1", "d2"]
    assert packed.dropped == 2


def test_packer_dedupes_identical_chunks_keeping_the_best_rank() -> None:
    docs = [
        Document("Same  text.\n", metadata={"source": "a"}),
        Document("Other text.", metadata={"source": "b"}),
        Document("Same text.", metadata={"source": "c"}),
        Document("   "),
    ]
    packed = pack_context(docs, 1000)
    assert [s.source for s in packed.sources] == ["a", "b"]
    assert packed.dropped == 2
    assert packed.text == "[1] a: Same text.\n[2] b: Other text."


def _pack_by_recounting(
    docs: list[Document], max_tokens: int, truncate: Truncate, model: str | None
) -> tuple[str, list[str | None], bool]:
    """The packing rule, spelled out: count the whole context again for every candidate."""

    def size(packed: list[Document]) -> int:
        return count_tokens(format_sources(packed), model) if packed else 0

    unique: list[Document] = []
    for doc in docs:
        body = " ".join(doc.page_content.split())
        if body and body not in {d.page_content for d in unique}:
            unique.append(doc.model_copy(update={"page_content": body}))
    packed: list[Document] = []
    for doc in unique:
        if size([*packed, doc]) <= max_tokens:
            packed.append(doc)
            continue
        if truncate != "drop":
            head = doc.model_copy(update={"page_content": ""})
            room = max_tokens - size([*packed, head]) + 1
            while room > 0:
                prefix = truncate_to_tokens(doc.page_content, room, model).rstrip()
                prefix = _sentence_prefix(prefix) if truncate == "sentence" else prefix
                if not prefix:
                    break
                cut = doc.model_copy(update={"page_content": prefix})
                if size([*packed, cut]) <= max_tokens:
                    return format_sources([*packed, cut]), [d.id for d in packed] + [cut.id], True
                room = min(room, count_tokens(prefix, model)) - 1
        break
    return format_sources(packed), [d.id for d in packed], False


def _random_docs(rng: random.Random) -> list[Document]:
    words = [
        "weft",
        "graph",
        "node",
        "token",
        "Ünïcödé",
        "日本語",
        "3.14",
        "v2/api",
        "(see",
        "it's",
    ]
    docs = []
    for i in range(rng.randint(1, 8)):
        sentences = [
            " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
            + rng.choice([".", "!", "?", "", ".)"])
            for _ in range(rng.randint(1, 6))
        ]
        title = rng.choice([None, f"Doc {i}", "a: b", "/path/x.md"])
        metadata = {"title": title} if title else {}
        docs.append(Document(" ".join(sentences), id=f"d{i}", metadata=metadata))
    return docs


@pytest.mark.parametrize("model", [None, "gpt-4o"])
def test_packing_matches_a_full_recount_of_the_context(model: str | None) -> None:
    rng = random.Random(model)
    for _ in range(60):
        docs = _random_docs(rng)
        budget = rng.randint(1, 200)
        truncate: Truncate = rng.choice(["sentence", "token", "drop"])
        packed = pack_context(docs, budget, truncate=truncate, model=model)
        text, ids, truncated = _pack_by_recounting(docs, budget, truncate, model)
        assert packed.text == text
        assert [s.id for s in packed.sources] == ids
        assert [s.truncated for s in packed.sources][-1:] == ([truncated] if ids else [])
        assert packed.tokens == count_tokens(packed.text, model) <= budget
        assert packed.dropped == len(docs) - len(ids)


def test_packing_encodes_each_source_once(monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = [f"Source number {i} says something long enough to matter. " * 10 for i in range(6)]
    docs = [Document(body.strip()) for body in bodies]
    enc = get_encoding()
    seen = spy_on_encode(monkeypatch, enc)
    packed = pack_context(docs, 10_000)
    monkeypatch.undo()
    assert len(packed.sources) == 6 and packed.tokens == count_tokens(packed.text)
    for body in bodies:
        # The start of each source, in any string encoded: once, when it was added.
        assert sum(body[:40] in text for text in seen) == 1


async def test_context_packer_is_a_typed_component() -> None:
    packer = ContextPacker(max_tokens=1000)
    assert packer.InputType == list[Document]
    assert packer.OutputType is PackedContext
    packed = packer.invoke(_docs())
    assert isinstance(packed, PackedContext) and str(packed) == packed.text
    assert await packer.ainvoke(_docs()) == packed
    assert packer.batch([_docs()[:1], ["plain string chunk."]])[1].text == (
        "[1] plain string chunk."
    )


def test_context_packer_validates_its_budget() -> None:
    with pytest.raises(ConfigurationError):
        ContextPacker(max_tokens=0)
    with pytest.raises(ConfigurationError):
        pack_context([], 10, truncate="words")  # type: ignore[arg-type]


def test_packed_text_fills_a_prompt() -> None:
    prompt = chat_prompt(("system", "Sources:\n{context}"), ("human", "{question}"))
    packed = ContextPacker(max_tokens=1000).invoke(_docs())
    values: dict[str, Any] = {"context": packed.text, "question": "Capital of Spain?"}
    messages = prompt.invoke(values).to_messages()
    assert "[3] Madrid: Madrid is the capital of Spain." in str(messages[0].content)
