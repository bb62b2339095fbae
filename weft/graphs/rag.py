"""The RAG chat graph: condense, hybrid retrieval, context packing, a cited answer, memory.

::

    START -> condense -> retrieve --(something scores above the threshold)--> pack -> prompt
                                  \\                                                    |
                                   `--(nothing relevant)--> refuse -> END       generate
                                                                                        |
                                                                             answer -> END

* **condense** turns a follow-up into a standalone question (see :func:`condense_heuristic`
  for the offline rule; with any other chat model than the extractive one, the model rewrites
  it). The history is ``ChatInput.history`` when given, else the session's.
* **retrieve** is the hybrid retrieval graph (:func:`~weft.graphs.hybrid.build_hybrid_graph`)
  as a subgraph, without its sentence rerank. If no document's fused score is above
  ``Settings.score_threshold``, the graph skips generation and answers
  :data:`~weft.components.models.NO_ANSWER` (**refuse**).
* **pack** numbers the sources ``[1]``, ``[2]``... within ``Settings.context_tokens`` tokens.
* **generate** is the chat model; its tokens stream. **answer** builds the
  :class:`~weft.graphs.schema.ChatOutput`: the answer, the sources it cites (index, id, title,
  source path, snippet, score; none for a refusal, every packed one for an answer that cites
  none) and the usage (the model's report, ``estimated`` with tiktoken when the
  provider sent none; a model-rewritten follow-up's usage is included).

**Memory.** Built with a checkpointer (``build_rag_graph(kb, checkpointer=...)``; ``True`` means
the settings' one: PostgreSQL at ``Settings.database_url``, else the SQLite file
``Settings.checkpoint_path``), a run whose input has a ``session_id`` runs in the
thread of that id (``weft.thread(session_id)``), so its history persists across calls,
processes and restarts. A run without a session id has no history and writes none: it runs
without the checkpointer.

:func:`stream_chat` / :func:`astream_chat` turn a run into chat events: ``ChatSources`` before
the first token (every packed source: the answer is not written yet; ``ChatDone`` holds the
cited ones), ``ChatToken`` per chunk of the model, then ``ChatUsage`` and ``ChatDone``.

Example:
    >>> graph = build_rag_graph(KnowledgeBase(settings), checkpointer=True)  # doctest: +SKIP
    >>> out = graph.invoke(ChatInput(question="What is weft?", session_id="s1"))  # doctest: +SKIP
    >>> out.answer  # doctest: +SKIP
    'weft is a Python framework that composes typed langchain-core Runnables ... [1]'
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver

from weft.chains.citations import (
    SYSTEM_PROMPT,
    citation_messages,
    citation_prompt_tokens,
    cited_indices,
    estimated_usage,
)
from weft.chains.condense import (
    Condensed,
    CondenseInput,
    condense_heuristic,
    condense_question,
    is_follow_up,
)
from weft.components.models import (
    NO_ANSWER,
    ExtractiveChatModel,
    default_chat_model,
    parse_sources,
    question_with_topic,
)
from weft.components.prompts import ContextPacker, PackedContext, PackedSource
from weft.components.resilience import is_fallback_answer
from weft.core._checkpoint import open_sqlite_checkpointer
from weft.core._database import open_checkpointer
from weft.core.compiled import CompiledGraph, thread
from weft.core.graph import END, START, Graph, GraphPlan
from weft.core.settings import Settings
from weft.core.stream import Chunk, FinalOutput, NodeFinished, StreamEvent
from weft.graphs.hybrid import BranchResult, build_hybrid_graph
from weft.graphs.knowledge import KnowledgeBase
from weft.graphs.schema import (
    ChatDone,
    ChatEvent,
    ChatInput,
    ChatOutput,
    ChatSources,
    ChatToken,
    ChatTurn,
    ChatUsage,
    SourceRef,
)

__all__ = [
    "GENERATE_NODE",
    "SYSTEM_PROMPT",
    "Condensed",
    "RagState",
    "astream_chat",
    "build_rag_graph",
    "condense_heuristic",
    "is_follow_up",
    "stream_chat",
]

GENERATE_NODE = "generate"
"""The node whose chunks are the answer's tokens."""

_SNIPPET_CHARS = 300


def _add_turns(old: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    return [*(old or []), *(new or [])]


class RagState(TypedDict, total=False):
    """The RAG graph's shared state; ``history`` accumulates, the rest is per turn."""

    history: Annotated[list[dict[str, str]], _add_turns]
    question: str
    query: str
    topic: str
    sources: list[SourceRef]
    condense_usage: dict[str, int]
    prompt_tokens: int


# -- condensing (the rule and the model call are in weft.chains.condense) -------------------------


def _history(chat: ChatInput, state: RagState) -> list[ChatTurn]:
    if chat.history:
        return list(chat.history)
    return [ChatTurn.model_validate(t) for t in state.get("history") or []]


# -- packing and answering -------------------------------------------------------------------------


def _question_of(state: RagState) -> str:
    """The question the prompt asks: the standalone query, or, for a follow-up the offline rule
    completed, the user's question with the borrowed topic on a line of its own."""
    topic = state.get("topic")
    if topic:
        return question_with_topic(state.get("question") or "", topic)
    return state.get("query") or state.get("question") or ""


def _cited(answer: str, sources: list[SourceRef]) -> list[SourceRef]:
    """The sources ``answer`` cites; none for a refusal; all of them for an answer that cites
    none (a model that did not follow the prompt), since it came from them."""
    if answer == NO_ANSWER:
        return []
    cited = set(cited_indices(answer))
    return [s for s in sources if s.index in cited] if cited else sources


def _source_refs(packed: PackedContext) -> list[SourceRef]:
    texts = {s.index: s.text for s in parse_sources(packed.text)}
    return [_source_ref(s, texts.get(s.index, "")) for s in packed.sources]


def _source_ref(source: PackedSource, text: str) -> SourceRef:
    snippet = text if len(text) <= _SNIPPET_CHARS else text[: _SNIPPET_CHARS - 1].rstrip() + "…"
    return SourceRef(
        index=source.index,
        id=source.id or "",
        title=source.title,
        source=source.source,
        snippet=snippet,
        score=source.score,
    )


def _total_usage(answer: AIMessage | None, state: RagState) -> dict[str, Any]:
    estimated = False
    if answer is None:
        usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    else:
        usage = estimated_usage(answer, int(state.get("prompt_tokens") or 0))
        estimated = bool(usage.pop("estimated"))
    condense = dict(state.get("condense_usage") or {})
    if condense:
        estimated = estimated or bool(condense.pop("estimated", 0))
        for key in usage:
            usage[key] += int(condense.get(key, 0))
    return {**usage, "estimated": estimated}


def _turns(question: str, answer: str) -> dict[str, Any]:
    return {
        "history": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


# -- the graph -------------------------------------------------------------------------------------

_CHECKPOINT_TYPES: tuple[type, ...] = (
    ChatInput,
    ChatTurn,
    ChatOutput,
    SourceRef,
    PackedContext,
    PackedSource,
    Condensed,
    BranchResult,
)


class _RagGraph(CompiledGraph[ChatInput, ChatOutput]):
    """Runs each input in the thread of its ``session_id`` when there is a checkpointer.

    A run without a session has no history to load or keep, so it runs on the same plan
    compiled without a checkpointer rather than in a thread that is written and then deleted.
    """

    def __init__(
        self,
        plan: GraphPlan,
        *,
        checkpointer: BaseCheckpointSaver[Any] | str | None = None,
        durability: Literal["sync", "async", "exit"] = "sync",
    ) -> None:
        super().__init__(plan, checkpointer=checkpointer, durability=durability)
        oneoff = None if self.checkpointer is None else CompiledGraph[ChatInput, ChatOutput](plan)
        self.__dict__["_oneoff"] = oneoff

    _oneoff: CompiledGraph[ChatInput, ChatOutput] | None

    def _session(
        self, input: Any, config: RunnableConfig | None
    ) -> tuple[RunnableConfig, CompiledGraph[ChatInput, ChatOutput] | None]:
        """The run's config, and the graph to run it on instead of this one (or None)."""
        cfg: dict[str, Any] = dict(config or {})
        if self._oneoff is None or input is None:
            return cfg, None  # type: ignore[return-value]
        if (cfg.get("configurable") or {}).get("thread_id"):
            return cfg, None  # type: ignore[return-value]
        session = (
            input.session_id
            if isinstance(input, ChatInput)
            else input.get("session_id")
            if isinstance(input, dict)
            else None
        )
        if not session:
            return cfg, self._oneoff  # type: ignore[return-value]
        return thread(str(session), **cfg), None

    def invoke(
        self, input: ChatInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> ChatOutput:
        cfg, oneoff = self._session(input, config)
        if oneoff is not None:
            return oneoff.invoke(input, cfg, **kwargs)
        return super().invoke(input, cfg, **kwargs)

    async def ainvoke(
        self, input: ChatInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> ChatOutput:
        cfg, oneoff = self._session(input, config)
        if oneoff is not None:
            return await oneoff.ainvoke(input, cfg, **kwargs)
        return await super().ainvoke(input, cfg, **kwargs)

    def events(
        self, input: ChatInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[StreamEvent]:
        cfg, oneoff = self._session(input, config)
        if oneoff is not None:
            return oneoff.events(input, cfg, **kwargs)
        return super().events(input, cfg, **kwargs)

    def aevents(
        self, input: ChatInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamEvent]:
        cfg, oneoff = self._session(input, config)
        if oneoff is not None:
            return oneoff.aevents(input, cfg, **kwargs)
        return super().aevents(input, cfg, **kwargs)


def build_rag_graph(
    kb: KnowledgeBase,
    *,
    model: BaseChatModel | Runnable[Any, Any] | None = None,
    settings: Settings | None = None,
    checkpointer: BaseCheckpointSaver[Any] | str | Literal[True] | None = None,
    name: str = "rag",
) -> CompiledGraph[ChatInput, ChatOutput]:
    """Compile the RAG chat graph over ``kb``.

    Args:
        kb: the knowledge base to retrieve from.
        model: the chat model, bare or under resilience wrappers (``with_timeout(model, 5)``);
            :func:`~weft.components.models.default_chat_model` if None.
        settings: ``top_k``, ``score_threshold``, ``context_tokens``, ``strict_answers``; the
            knowledge base's if None.
        checkpointer: ``True`` for the settings' one (PostgreSQL at ``database_url``, else the
            SQLite file ``checkpoint_path``), a path, a LangGraph checkpointer, ``"memory"``,
            or None for no memory across calls.
        name: the compiled graph's name.
    """
    cfg = settings if settings is not None else kb.settings
    chat_model = model if model is not None else default_chat_model()
    offline = isinstance(chat_model, ExtractiveChatModel)
    if isinstance(chat_model, ExtractiveChatModel):
        # The knowledge base's embedder gives the extractive model the words' meaning; strict
        # answers also read them in context, with the sentence encoder.
        update: dict[str, Any] = {}
        if chat_model.embeddings is None:
            update["embeddings"] = kb.store.embeddings
        if cfg.strict_answers and chat_model.word_encoder is None:
            from weft.components.embeddings import MiniLMEmbeddings  # loads numpy: only here

            update["word_encoder"] = MiniLMEmbeddings()
        chat_model = chat_model.model_copy(update=update)
    threshold = cfg.score_threshold

    def _retrieves(word: str) -> bool:
        return bool(kb.bm25.search(word, k=1))

    # The chain's function runs inside the node, so condensing stays one step of the graph.
    condenser = condense_question(None if offline else chat_model, retrieves=_retrieves).fn

    def condense(chat: ChatInput, config: RunnableConfig, state: RagState) -> Condensed:
        result: Condensed = condenser(CondenseInput(chat.question, _history(chat, state)), config)
        return result

    def relevant(docs: list[Document]) -> str:
        scores = (d.metadata.get("score") for d in docs)
        above = any(isinstance(s, int | float) and s > threshold for s in scores)
        return "pack" if above else "refuse"

    def prompt(packed: PackedContext, state: RagState) -> list[BaseMessage]:
        return citation_messages(packed, _question_of(state))

    def answer(message: AIMessage, state: RagState) -> ChatOutput:
        text = message.text.strip()
        return ChatOutput(
            answer=text,
            sources=_cited(text, list(state.get("sources") or [])),
            usage=_total_usage(message, state),
            fallback=is_fallback_answer(message),
        )

    def refuse(docs: list[Document], state: RagState) -> ChatOutput:
        return ChatOutput(answer=NO_ANSWER, sources=[], usage=_total_usage(None, state))

    g = Graph[ChatInput, ChatOutput](name, state=RagState)
    g.add_node(
        "condense",
        condense,
        post=lambda c, state: {
            "question": c.question,
            "query": c.query,
            "topic": c.topic,
            "condense_usage": c.usage,
        },
    )
    g.add_node(
        "retrieve",
        # Without the sentence rerank: with it, the extractive model answers fewer of the
        # rag-paraphrase questions (0.727 vs 0.795), though retrieval itself ranks as well
        # or better; the answerer picks among its sources, and their mix changes.
        build_hybrid_graph(kb, k=cfg.top_k, name="hybrid", reranker=None),
        pre=_query_of,
    )
    g.add_branch("retrieve", relevant, ["pack", "refuse"])
    g.add_node(
        "pack",
        ContextPacker(cfg.context_tokens, name="pack"),
        # The prompt's size, for usage when the model reports none; counted here, where the
        # packed context's own count is at hand, so the context is not encoded twice.
        post=lambda packed, state: {
            "sources": _source_refs(packed),
            "prompt_tokens": citation_prompt_tokens(packed, _question_of(state)),
        },
    )
    g.add_node("prompt", prompt)
    g.add_node(GENERATE_NODE, chat_model)
    g.add_node(
        "answer",
        answer,
        post=lambda out, state: _turns(state.get("question") or "", out.answer),
    )
    g.add_node(
        "refuse",
        refuse,
        post=lambda out, state: _turns(state.get("question") or "", out.answer),
    )
    g.add_edge(START, "condense").add_edge("condense", "retrieve")
    g.add_edge("pack", "prompt").add_edge("prompt", GENERATE_NODE)
    g.add_edge(GENERATE_NODE, "answer").add_edge("answer", END).add_edge("refuse", END)
    saver: BaseCheckpointSaver[Any] | str | None
    if checkpointer is True:
        saver = open_checkpointer(cfg, _CHECKPOINT_TYPES)
    elif isinstance(checkpointer, str) and checkpointer != "memory":
        saver = open_sqlite_checkpointer(checkpointer, _CHECKPOINT_TYPES)
    else:
        saver = checkpointer
    # A conversation needs its history saved when a turn ends, not after every step; writing
    # each step's checkpoint cost a chat answer about 40% of its time.
    return _RagGraph(g.plan(), checkpointer=saver, durability="exit")


def _query_of(condensed: Condensed, state: Any) -> str:
    return condensed.query


# -- chat events -----------------------------------------------------------------------------------


class _Events:
    """Turns graph stream events into chat events, in the documented order."""

    def __init__(self) -> None:
        self.sources_sent = False
        self.tokens_sent = False

    def feed(self, event: StreamEvent) -> Iterator[ChatEvent]:
        if isinstance(event, NodeFinished) and event.path == ("pack",):
            self.sources_sent = True
            yield ChatSources(_source_refs(event.output))
        elif isinstance(event, Chunk) and event.final:
            text = _chunk_text(event.chunk)
            if text:
                if not self.sources_sent:
                    self.sources_sent = True
                    yield ChatSources([])
                self.tokens_sent = True
                yield ChatToken(text)
        elif isinstance(event, FinalOutput):
            output = event.output
            if not isinstance(output, ChatOutput):
                raise TypeError(f"the RAG graph ended with {type(output).__name__}, not ChatOutput")
            if not self.sources_sent:
                yield ChatSources(list(output.sources))
            if not self.tokens_sent and output.answer:
                # A refusal, or a model that does not stream: the answer is one token.
                yield ChatToken(output.answer)
            yield ChatUsage(dict(output.usage))
            yield ChatDone(output)


def _chunk_text(chunk: Any) -> str:
    if isinstance(chunk, BaseMessage):
        return chunk.text
    return chunk if isinstance(chunk, str) else ""


def _chat_input(input: ChatInput | dict[str, Any] | str) -> ChatInput:
    if isinstance(input, ChatInput):
        return input
    if isinstance(input, str):
        return ChatInput(question=input)
    return ChatInput.model_validate(input)


def stream_chat(
    graph: CompiledGraph[ChatInput, ChatOutput],
    input: ChatInput | dict[str, Any] | str,
    *,
    settings: Settings | None = None,
    config: RunnableConfig | None = None,
) -> Iterator[ChatEvent]:
    """Run the RAG graph and yield ``ChatSources``, ``ChatToken``..., ``ChatUsage``, ``ChatDone``.

    ``settings`` is accepted for symmetry with the server and CLI, which pass theirs; the graph
    was built with its own. A bad input raises pydantic's ``ValidationError`` before anything runs.
    """
    chat = _chat_input(input)
    events = _Events()
    stream = graph.events(chat, config)
    try:
        for event in stream:
            yield from events.feed(event)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


async def astream_chat(
    graph: CompiledGraph[ChatInput, ChatOutput],
    input: ChatInput | dict[str, Any] | str,
    *,
    settings: Settings | None = None,
    config: RunnableConfig | None = None,
) -> AsyncIterator[ChatEvent]:
    """Async :func:`stream_chat`. Closing it (``aclose()``, e.g. on a client disconnect)
    cancels the run: the node running then, such as the model's stream, is cancelled."""
    chat = _chat_input(input)
    events = _Events()
    stream = graph.aevents(chat, config)
    try:
        async for event in stream:
            for chat_event in events.feed(event):
                yield chat_event
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
