import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from tests.graphs._bakery import NEAR_MISS, write_bakery
from weft.chains.citations import citation_messages, citation_prompt_tokens
from weft.components.models import NO_ANSWER, ExtractiveChatModel, openai_chat_model
from weft.components.prompts import PackedContext, pack_context
from weft.components.tokens import count_message_tokens, count_tokens, get_encoding
from weft.core.compiled import thread
from weft.core.settings import Settings
from weft.graphs.knowledge import KnowledgeBase
from weft.graphs.rag import (
    astream_chat,
    build_rag_graph,
    condense_heuristic,
    is_follow_up,
    stream_chat,
)
from weft.graphs.schema import (
    ChatDone,
    ChatInput,
    ChatOutput,
    ChatSources,
    ChatToken,
    ChatTurn,
    ChatUsage,
)
from weft.testing import OpenAIServer


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    base = KnowledgeBase(Settings(data_dir=tmp_path_factory.mktemp("rag")))
    base.ensure_demo()
    return base


def _chunk_text(kb: KnowledgeBase, chunk_id: str) -> str:
    (doc,) = kb.bm25.get_by_ids([chunk_id])
    return " ".join(doc.page_content.split())


def _quotes(answer: str) -> list[tuple[str, int]]:
    return [(m[1].strip(), int(m[2])) for m in re.finditer(r"(.+?)\s*\[(\d+)\]", answer)]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Does weft need an API key?", "weft needs no API key"),
        ("How do I keep two knowledge bases apart?", "its own data directory"),
        ("What does make test run?", "make test installs weft, then runs ruff"),
        ("What are the four stream events?", "NodeStarted, Chunk, NodeFinished and FinalOutput"),
    ],
)
def test_answers_quote_the_bundled_handbook_and_cite_the_quoted_source(
    kb: KnowledgeBase, question: str, expected: str
) -> None:
    out = build_rag_graph(kb).invoke(ChatInput(question=question))
    assert expected in out.answer
    quotes = _quotes(out.answer)
    assert quotes
    by_index = {s.index: s for s in out.sources}
    for sentence, index in quotes:
        assert sentence in _chunk_text(kb, by_index[index].id)
    source = by_index[quotes[0][1]]
    assert source.title and source.source and source.source.endswith(".md")
    assert source.snippet and source.score is not None and source.score > 0


def test_off_topic_questions_get_the_no_answer_reply(kb: KnowledgeBase) -> None:
    out = build_rag_graph(kb).invoke(ChatInput(question="Who won the 1998 football world cup?"))
    assert out.answer == NO_ANSWER


def test_nothing_above_the_score_threshold_skips_generation(kb: KnowledgeBase) -> None:
    strict = kb.settings.model_copy(update={"score_threshold": 1.0})
    graph = build_rag_graph(kb, settings=strict)
    events = list(graph.events(ChatInput(question="Does weft need an API key?")))
    ran = [e.path for e in events if type(e).__name__ == "NodeStarted"]
    assert ("refuse",) in ran and ("generate",) not in ran and ("pack",) not in ran
    out = events[-1].output  # type: ignore[attr-defined]
    assert out == ChatOutput(
        answer=NO_ANSWER,
        sources=[],
        usage={"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "estimated": False},
    )


def test_strict_answers_quote_only_a_sentence_that_matches_every_word_asked(
    tmp_path: Path,
) -> None:
    bakery = KnowledgeBase(Settings(data_dir=tmp_path / "data"))
    bakery.ingest(write_bakery(tmp_path))
    strict = bakery.settings.model_copy(update={"strict_answers": True})
    near_miss = ChatInput(question=NEAR_MISS)
    assert "bags of six" in build_rag_graph(bakery).invoke(near_miss).answer
    assert build_rag_graph(bakery, settings=strict).invoke(near_miss).answer == NO_ANSWER
    paraphrase = ChatInput(question="How heavy is a loaf of rye?")
    answer = build_rag_graph(bakery, settings=strict).invoke(paraphrase).answer
    assert answer.startswith("A rye loaf weighs 800 grams. [")


def test_condense_heuristic_borrows_the_previous_questions_terms() -> None:
    history = [
        ChatTurn(role="user", content="What does make test run?"),
        ChatTurn(role="assistant", content="make test runs ruff. [1]"),
    ]
    assert condense_heuristic("And what does it install?", history) == (
        "And what does it install? make test run"
    )
    long = "Which file formats can the ingest command read?"
    assert condense_heuristic(long, history) == long
    assert condense_heuristic("What is it?", []) == "What is it?"


def _asked(*questions: str) -> list[ChatTurn]:
    return [ChatTurn(role="user", content=q) for q in questions]


@pytest.mark.parametrize(
    ("previous", "question"),
    [
        ("What is BM25?", "How do I install weft?"),
        ("Does the lamp work with Apple HomeKit?", "How do I factory reset the Orbit?"),
        ("How much does the Orbit cost?", "Which courier delivers the parcels?"),
        ("Is that lamp dimmable?", "Where is the serial number printed?"),
        ("How much does the Orbit cost?", "Is there a student discount?"),
    ],
)
def test_a_short_question_on_a_new_topic_is_never_rewritten(previous: str, question: str) -> None:
    assert condense_heuristic(question, _asked(previous)) == question


@pytest.mark.parametrize(
    ("question", "borrowed"),
    [
        ("And for the larger model?", "price Orbit"),
        ("What about returns?", "price Orbit"),
        ("Is it waterproof?", "Orbit"),
        ("And the bigger one?", "price Orbit"),
        ("Do you ship there?", "price Orbit"),
    ],
)
def test_pronouns_and_ellipsis_make_a_follow_up(question: str, borrowed: str) -> None:
    assert condense_heuristic(question, _asked("What is the price of the Orbit?")) == (
        f"{question} {borrowed}"
    )


def test_a_question_whose_words_retrieve_nothing_is_a_follow_up() -> None:
    known = {"orbit", "price", "warranty"}
    assert condense_heuristic(
        "Seriously, folks?", _asked("What is the Orbit warranty?"), retrieves=known.__contains__
    ) == ("Seriously, folks? Orbit warranty")
    assert is_follow_up("How long is the lifespan?", "Orbit price?", retrieves=known.__contains__)
    assert not is_follow_up(
        "How long is the warranty?", "Orbit price?", retrieves=known.__contains__
    )


def test_a_third_turn_reaches_the_first_topic_through_the_second() -> None:
    history = _asked("What does the Orbit cost?", "And the Max?")
    assert condense_heuristic("What about its warranty?", history) == (
        "What about its warranty? Max Orbit"
    )


def test_a_new_topic_in_a_session_gets_its_own_answer(kb: KnowledgeBase) -> None:
    alone = build_rag_graph(kb).invoke(ChatInput(question="How do I install weft?"))
    after = build_rag_graph(kb).invoke(
        ChatInput(question="How do I install weft?", history=_asked("What is BM25?"))
    )
    assert after.answer == alone.answer and "WEFT_DATA_DIR" not in after.answer


def test_a_follow_up_is_answered_in_context_with_explicit_history(kb: KnowledgeBase) -> None:
    history = [ChatTurn(role="user", content="What does make test run?")]
    out = build_rag_graph(kb).invoke(
        ChatInput(question="And what does it install?", history=history)
    )
    assert "make test installs weft" in out.answer


def test_memory_persists_per_session_across_rebuilt_graphs(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    db = tmp_path / "chk.sqlite"
    first = build_rag_graph(kb, checkpointer=str(db))
    first.invoke(ChatInput(question="What does make test run?", session_id="s1"))
    second = build_rag_graph(kb, checkpointer=str(db))
    history = second.get_state(thread("s1"))["history"]
    assert [t["role"] for t in history] == ["user", "assistant"]
    assert history[0]["content"] == "What does make test run?"
    out = second.invoke(ChatInput(question="And what does it install?", session_id="s1"))
    assert "make test installs weft" in out.answer
    assert len(second.get_state(thread("s1"))["history"]) == 4
    assert second.get_state(thread("other")) == {}


def test_runs_without_a_session_leave_no_thread_behind(kb: KnowledgeBase, tmp_path: Path) -> None:
    db = tmp_path / "chk.sqlite"
    graph = build_rag_graph(kb, checkpointer=str(db))
    graph.invoke(ChatInput(question="What is weft?"))
    list(stream_chat(graph, "What is weft?"))
    asyncio.run(_drain(astream_chat(graph, "What is weft?")))
    # A run without a session runs without the checkpointer: nothing is written at all.
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("select name from sqlite_master")}
        if "checkpoints" in tables:
            assert conn.execute("select count(*) from checkpoints").fetchone() == (0,)


async def _drain(events: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in events]


def test_runs_without_a_session_answer_as_a_sessions_first_turn(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    graph = build_rag_graph(kb, checkpointer=str(tmp_path / "chk.sqlite"))
    question = "How do I stream tokens from a graph?"
    alone = list(stream_chat(graph, question))
    in_session = list(stream_chat(graph, ChatInput(question=question, session_id="first")))
    assert alone == in_session
    assert asyncio.run(_drain(astream_chat(graph, question))) == alone
    assert graph.invoke(ChatInput(question=question)) == alone[-1].output
    # ... and a session's next turn still sees its history.
    follow_up = ChatInput(question="And how do I stop it?", session_id="first")
    graph.invoke(follow_up)
    state = graph.get_state(thread("first"))
    assert len(state["history"]) == 4 and state["query"].startswith("And how do I stop it? ")


def test_checkpointer_true_uses_the_settings_sqlite_file(kb: KnowledgeBase) -> None:
    graph = build_rag_graph(kb, checkpointer=True)
    graph.invoke(ChatInput(question="What is weft?", session_id="t"))
    assert kb.settings.checkpoint_path.is_file()


def _check_order(events: list[Any]) -> ChatOutput:
    kinds = [type(e) for e in events]
    assert kinds[0] is ChatSources and kinds[-2:] == [ChatUsage, ChatDone]
    assert set(kinds[1:-2]) == {ChatToken} and len(kinds) > 5
    done = events[-1].output
    assert "".join(e.text for e in events[1:-2]) == done.answer
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", done.answer)}
    assert [s.index for s in done.sources] == sorted(cited)  # only the cited sources
    assert {s.index for s in events[0].sources} >= cited and events[-2].usage == done.usage
    return done


def test_stream_chat_sends_sources_tokens_usage_then_done(kb: KnowledgeBase) -> None:
    done = _check_order(list(stream_chat(build_rag_graph(kb), {"question": "What is BM25?"})))
    assert done.usage["estimated"] is False and done.usage["output_tokens"] > 0


async def test_astream_chat_sends_the_same_events(kb: KnowledgeBase) -> None:
    graph = build_rag_graph(kb)
    events = [e async for e in astream_chat(graph, ChatInput(question="What is BM25?"))]
    assert _check_order(events) == _check_order(list(stream_chat(graph, "What is BM25?")))


def test_a_refusal_still_streams_sources_a_token_usage_and_done(kb: KnowledgeBase) -> None:
    strict = kb.settings.model_copy(update={"score_threshold": 1.0})
    events = list(stream_chat(build_rag_graph(kb, settings=strict), "What is weft?"))
    assert [type(e) for e in events] == [ChatSources, ChatToken, ChatUsage, ChatDone]
    assert events[1] == ChatToken(NO_ANSWER)


class SlowModel(BaseChatModel):
    """Streams 200 tokens, 20 ms apart; records how many it produced and if it was cancelled."""

    produced: list[int] = Field(default_factory=list)
    cancelled: list[bool] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "slow"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kw: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("slow"))])

    async def _astream(
        self, messages: list[BaseMessage], *args: Any, **kw: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        try:
            for i in range(200):
                await asyncio.sleep(0.02)
                self.produced.append(i)
                yield ChatGenerationChunk(message=AIMessageChunk(content=f"t{i} "))
        except asyncio.CancelledError:
            self.cancelled.append(True)
            raise


async def test_closing_astream_chat_cancels_the_run_promptly(kb: KnowledgeBase) -> None:
    model = SlowModel()
    stream = astream_chat(build_rag_graph(kb, model=model), "What is weft?")
    tokens = 0
    async for event in stream:  # type: ignore[attr-defined]
        if isinstance(event, ChatToken):
            tokens += 1
            if tokens == 3:
                break
    started = time.monotonic()
    await stream.aclose()  # type: ignore[attr-defined]
    assert time.monotonic() - started < 1.0
    produced = len(model.produced)
    await asyncio.sleep(0.2)
    assert len(model.produced) == produced < 20
    assert model.cancelled == [True]


def test_usage_is_estimated_when_the_model_reports_none(kb: KnowledgeBase) -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("weft needs no API key. [1]")]))
    out = build_rag_graph(kb, model=model).invoke(ChatInput(question="Does weft need a key?"))
    assert out.answer == "weft needs no API key. [1]"
    assert out.usage["estimated"] is True
    assert out.usage["input_tokens"] > 100 and out.usage["output_tokens"] > 3
    assert out.usage["total_tokens"] == out.usage["input_tokens"] + out.usage["output_tokens"]


class RecordingModel(BaseChatModel):
    """Answers without reporting usage; records the prompts it was sent."""

    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kw: Any) -> ChatResult:
        self.prompts.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage("It is so. [1]"))])


@pytest.mark.parametrize(
    "question",
    ["Does weft need an API key?", "What are the four stream events?", "What is BM25?"],
)
def test_estimated_prompt_tokens_equal_a_full_count_of_the_prompt_sent(
    kb: KnowledgeBase, question: str
) -> None:
    model = RecordingModel()
    out = build_rag_graph(kb, model=model).invoke(ChatInput(question=question))
    (prompt,) = model.prompts
    assert "\n[1] " in f"\n{prompt[-1].text}" and f"Question: {question}" in prompt[-1].text
    assert out.usage == {
        "input_tokens": count_message_tokens(prompt),
        "output_tokens": count_tokens("It is so. [1]"),
        "total_tokens": count_message_tokens(prompt) + count_tokens("It is so. [1]"),
        "estimated": True,
    }


@pytest.mark.parametrize("question", ["", "What is it?", "/etc/weft?", "  spaced  ", "日本語?"])
def test_prompt_tokens_reuse_the_packed_count_and_equal_a_full_count(
    kb: KnowledgeBase, question: str
) -> None:
    docs = kb.hybrid_retriever(k=6).invoke("How do I install weft?")
    for budget in (1, 60, 400, 1500):
        packed = pack_context(docs, budget)
        full = count_message_tokens(citation_messages(packed, question))
        assert citation_prompt_tokens(packed, question) == full
    by_hand = PackedContext(text="[1] Paris is in France.")  # no count: counted in full
    assert citation_prompt_tokens(by_hand, question) == count_message_tokens(
        citation_messages(by_hand, question)
    )


class RecordingExtractiveModel(ExtractiveChatModel):
    """The extractive model, recording the prompts it was sent."""

    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    def _chunks(self, messages: list[BaseMessage]) -> list[ChatGenerationChunk]:
        self.prompts.append(list(messages))
        return super()._chunks(messages)


def _encoded(text: str) -> int:
    """A count by tiktoken itself, with nothing remembered."""
    return len(get_encoding("cl100k_base").encode(text, disallowed_special=()))


@pytest.mark.parametrize(
    "question",
    ["Does weft need an API key?", "How do I stream tokens from a graph?", "日本語?"],
)
def test_extractive_usage_equals_a_full_count_of_the_prompt_sent(
    kb: KnowledgeBase, question: str
) -> None:
    # The prompt's count is remembered while the context is packed; what the model reports
    # must still be what encoding its prompt gives.
    model = RecordingExtractiveModel()
    events = list(stream_chat(build_rag_graph(kb, model=model), ChatInput(question=question)))
    done = events[-1]
    assert isinstance(done, ChatDone)
    (prompt,) = model.prompts
    prompt_tokens = sum(_encoded(m.text) for m in prompt)
    answer_tokens = _encoded(done.output.answer)
    assert done.output.usage == {
        "input_tokens": prompt_tokens,
        "output_tokens": answer_tokens,
        "total_tokens": prompt_tokens + answer_tokens,
        "estimated": False,
    }


def test_estimated_usage_adds_the_condense_calls_counts(kb: KnowledgeBase) -> None:
    model = RecordingModel()
    history = [ChatTurn(role="user", content="What does make test run?")]
    out = build_rag_graph(kb, model=model).invoke(
        ChatInput(question="And what does it install?", history=history)
    )
    condense, answer = model.prompts
    assert "Follow-up question: And what does it install?" in condense[-1].text
    prompts = count_message_tokens(condense) + count_message_tokens(answer)
    replies = 2 * count_tokens("It is so. [1]")
    assert out.usage == {
        "input_tokens": prompts,
        "output_tokens": replies,
        "total_tokens": prompts + replies,
        "estimated": True,
    }


def test_openai_path_sends_numbered_sources_and_condenses_with_the_model(
    kb: KnowledgeBase,
) -> None:
    replies = ["What does make test install?", "make test installs weft. [1]"]
    with OpenAIServer(replies) as server:
        model = openai_chat_model(base_url=server.base_url, api_key="test")
        graph = build_rag_graph(kb, model=model)
        history = [ChatTurn(role="user", content="What does make test run?")]
        events = list(
            stream_chat(graph, ChatInput(question="And what does it install?", history=history))
        )
        condense, answer = server.requests
    done = events[-1].output
    assert done.answer == "make test installs weft. [1]"
    assert [type(e) for e in events][:2] == [ChatSources, ChatToken]
    assert "Follow-up question: And what does it install?" in condense.messages[-1]["content"]
    prompt = answer.messages[-1]["content"]
    assert "Question: What does make test install?" in prompt
    numbered = re.findall(r"^\[(\d+)\] ", prompt, re.MULTILINE)
    assert numbered == [str(i) for i in range(1, len(events[0].sources) + 1)] and numbered
    assert [s.index for s in done.sources] == [1]  # the answer cites [1] only
    assert "cite" in answer.messages[0]["content"] and NO_ANSWER in answer.messages[0]["content"]
    assert done.usage["estimated"] is False and done.usage["total_tokens"] > 0


def test_an_answer_lists_only_the_sources_it_cites_and_a_refusal_none(kb: KnowledgeBase) -> None:
    graph = build_rag_graph(kb)
    out = graph.invoke(ChatInput(question="What is BM25?"))
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", out.answer)}
    assert cited and {s.index for s in out.sources} == cited
    refused = graph.invoke(ChatInput(question="Who won the football world cup in 1954?"))
    assert refused.answer == NO_ANSWER and refused.sources == []


def test_an_offline_follow_up_carries_its_borrowed_topic_on_a_line_of_its_own(
    kb: KnowledgeBase,
) -> None:
    model = RecordingExtractiveModel()
    history = [ChatTurn(role="user", content="What does make test run?")]
    asked = ChatInput(question="And what does it install?", history=history)
    done = list(stream_chat(build_rag_graph(kb, model=model), asked))[-1]
    assert isinstance(done, ChatDone)
    (prompt,) = model.prompts
    assert prompt[-1].text.endswith(
        "\n\nQuestion: And what does it install?\nEarlier topic: make test run"
    )
    assert "make test installs weft" in done.output.answer
    assert done.output.usage["input_tokens"] == sum(_encoded(m.text) for m in prompt)
