"""Chat models: OpenAI (or any OpenAI-compatible server) online, an extractive model offline.

* :func:`openai_chat_model` builds an :class:`OpenAIChatModel`, a langchain-openai ``ChatOpenAI``
  configured from ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` and ``WEFT_MODEL``, that streams usage
  and raises weft errors (:class:`~weft.core.errors.AuthenticationError`,
  :class:`~weft.core.errors.BadRequestError`, :class:`~weft.core.errors.ProviderUnavailableError`)
  that say what failed, where, and how to fix it.
* :class:`ExtractiveChatModel` needs no key and no network: it answers by quoting the context
  sentences most relevant to the question, with citations, or says :data:`NO_ANSWER`.
* :func:`default_chat_model` picks the first when an OpenAI key or base URL is configured, else
  the second.

The context format both understand (and :func:`format_sources` writes) is one numbered source
per line; a short prefix ending in ``": "`` is the source's title::

    [1] Paris guide: Paris is the capital of France. It has 2.1 million inhabitants.
    [2] Berlin is the capital of Germany.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables.config import run_in_executor
from langchain_openai import ChatOpenAI
from pydantic import ConfigDict, Field, PrivateAttr

from weft.components._answering import QUESTION_FORM, cosine, fits_focus, focus_of, stem
from weft.components._memo import memo_by_bytes
from weft.components.tokens import count_tokens
from weft.core.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ModelError,
    ProviderUnavailableError,
)

__all__ = [
    "DEFAULT_MODEL",
    "NO_ANSWER",
    "ExtractiveChatModel",
    "OpenAIChatModel",
    "Source",
    "cited_sources",
    "default_chat_model",
    "format_sources",
    "openai_chat_model",
    "parse_sources",
]

DEFAULT_MODEL = "gpt-4o-mini"
"""The model :func:`openai_chat_model` uses when neither ``model=`` nor ``WEFT_MODEL`` is set."""

NO_ANSWER = "The knowledge base has no answer to this question."
"""What :class:`ExtractiveChatModel` says when no context sentence is relevant enough."""

_OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"

# -- the OpenAI model ----------------------------------------------------------------------------


def _provider_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(getattr(exc, "message", None) or exc)


def _is_unknown_model(exc: openai.APIStatusError) -> bool:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    code = error.get("code") if isinstance(error, dict) else None
    message = _provider_message(exc).lower()
    return code == "model_not_found" or ("model" in message and "does not exist" in message)


class OpenAIChatModel(ChatOpenAI):
    """langchain-openai's ``ChatOpenAI`` that raises weft errors and streams usage by default.

    Everything ChatOpenAI does still works (``stream``, ``bind_tools``,
    ``with_structured_output``, retries with ``Retry-After``); only failures change: a provider
    error becomes a :class:`~weft.core.errors.ModelError` subclass whose message names the
    model, the base URL and the fix. The original exception is ``__cause__``. Prefer
    :func:`openai_chat_model`, which reads the environment.

    Example:
        >>> from weft.testing import OpenAIServer
        >>> with OpenAIServer(["Bonjour !"]) as server:
        ...     model = OpenAIChatModel(model="gpt-4o-mini", base_url=server.base_url, api_key="t")
        ...     model.invoke("Say hello in French").content
        'Bonjour !'
    """

    stream_usage: bool | None = True
    """Ask for token usage in streams too, so callbacks and cost tracking always get it."""

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """False: ``langchain_core.load`` only rebuilds classes on its allowlist, not weft's."""
        return False

    @property
    def _base_url(self) -> str:
        return self.openai_api_base or os.environ.get("OPENAI_BASE_URL") or _OPENAI_DEFAULT_BASE_URL

    def _where(self) -> str:
        return f"OpenAI chat model '{self.model_name}' at {self._base_url}"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        # Run metadata carries the server, so tracing can set server.address and server.port.
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["weft_base_url"] = self._base_url  # type: ignore[typeddict-unknown-key]
        return params

    def _convert_chunk_to_generation_chunk(
        self,
        chunk: dict[str, Any],
        default_chunk_class: type,
        base_generation_info: dict[str, Any] | None,
    ) -> ChatGenerationChunk | None:
        # langchain-openai drops the completion id when streaming; keep it, as invoke does.
        out = super()._convert_chunk_to_generation_chunk(
            chunk, default_chunk_class, base_generation_info
        )
        if out is not None and chunk.get("id"):
            out.message.response_metadata.setdefault("id", chunk["id"])
        return out

    def _weft_error(self, exc: Exception) -> ModelError:
        where = self._where()
        retries = self.max_retries if self.max_retries is not None else 2
        detail = _provider_message(exc)
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return AuthenticationError(
                f"{where} rejected the API key (HTTP {exc.status_code}: {detail}); set "
                f"OPENAI_API_KEY (or pass api_key=...) to a key that this server accepts"
            )
        if isinstance(exc, openai.APIStatusError) and _is_unknown_model(exc):
            base = self.openai_api_base or _OPENAI_DEFAULT_BASE_URL
            return BadRequestError(
                f"{where}: the model '{self.model_name}' is unknown (HTTP {exc.status_code}: "
                f"{detail}); set WEFT_MODEL (or pass model=...) to a model listed by "
                f"GET {base.rstrip('/')}/models"
            )
        if isinstance(exc, openai.NotFoundError):
            return BadRequestError(
                f"{where} has no chat completions endpoint (HTTP 404: {detail}); check that "
                f"OPENAI_BASE_URL (or base_url=...) points at an OpenAI-compatible API, "
                f"usually ending in /v1"
            )
        if isinstance(exc, openai.RateLimitError):
            return ProviderUnavailableError(
                f"{where} still answered HTTP 429 (rate limited) after {retries} retries: "
                f"{detail}; wait and try again, raise max_retries, or check the account's "
                f"rate limits and quota"
            )
        if isinstance(exc, openai.InternalServerError):
            return ProviderUnavailableError(
                f"{where} answered HTTP {exc.status_code} after {retries} retries: {detail}; "
                f"the provider is failing, try again later or raise max_retries"
            )
        if isinstance(exc, openai.APIStatusError) and 400 <= exc.status_code < 500:
            return BadRequestError(
                f"{where} rejected the request (HTTP {exc.status_code}: {detail}); check the "
                f"model parameters, messages and tools sent"
            )
        if isinstance(exc, openai.APITimeoutError):
            return ProviderUnavailableError(
                f"{where} did not answer within {self.request_timeout}s (max_retries={retries}); "
                f"raise timeout=..., or check that the server is up and not overloaded"
            )
        if isinstance(exc, openai.APIConnectionError):
            cause: BaseException = exc
            while cause.__cause__ is not None:
                cause = cause.__cause__
            reason = f"{type(cause).__name__}: {cause}"
            return ProviderUnavailableError(
                f"{where}: the connection failed or dropped mid-response ({reason}); check "
                f"OPENAI_BASE_URL and that the server is running"
            )
        if isinstance(exc, json.JSONDecodeError):
            return ModelError(
                f"{where} sent a malformed response (not JSON: {exc}); check that the base URL "
                f"is an OpenAI-compatible API"
            )
        return ModelError(f"{where} failed: {type(exc).__name__}: {detail}")

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        try:
            return super()._generate(*args, **kwargs)
        except (openai.APIError, json.JSONDecodeError) as exc:
            raise self._weft_error(exc) from exc

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
        try:
            return await super()._agenerate(*args, **kwargs)
        except (openai.APIError, json.JSONDecodeError) as exc:
            raise self._weft_error(exc) from exc

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        try:
            yield from super()._stream(*args, **kwargs)
        except (openai.APIError, json.JSONDecodeError) as exc:
            raise self._weft_error(exc) from exc

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        try:
            async for chunk in super()._astream(*args, **kwargs):
                yield chunk
        except (openai.APIError, json.JSONDecodeError) as exc:
            raise self._weft_error(exc) from exc


def openai_chat_model(
    model: str | None = None,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
    max_retries: int = 2,
    **kwargs: Any,
) -> OpenAIChatModel:
    """An OpenAI chat model configured from arguments, then the environment.

    Args:
        model: The model name; else ``WEFT_MODEL``; else :data:`DEFAULT_MODEL`.
        api_key: Else ``OPENAI_API_KEY``. May be left out when a base URL is set, since local
            OpenAI-compatible servers often take any key.
        base_url: Else ``OPENAI_BASE_URL``; else OpenAI's API.
        timeout: Seconds to wait for each HTTP request.
        max_retries: Retries on 408/409/429/5xx and connection errors; the openai SDK waits
            what ``Retry-After`` says (up to two minutes), else backs off exponentially.
        **kwargs: Passed on to ``ChatOpenAI`` (``temperature``, ``max_tokens``, ...).

    Raises:
        ConfigurationError: no API key and no base URL is configured.

    Example:
        >>> model = openai_chat_model("gpt-4o-mini", api_key="sk-...")  # doctest: +SKIP
        >>> model.bind_tools([get_weather]).invoke("Weather in Paris?")  # doctest: +SKIP
    """
    model = model or os.environ.get("WEFT_MODEL") or DEFAULT_MODEL
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        if base_url is None:
            raise ConfigurationError(
                f"openai_chat_model('{model}') has no API key; set OPENAI_API_KEY or pass "
                f"api_key=..., or set OPENAI_BASE_URL to a local OpenAI-compatible server; "
                f"to run offline use ExtractiveChatModel() or default_chat_model()"
            )
        # The SDK refuses to run without a key; local servers ignore it.
        key = "unused"
    return OpenAIChatModel(
        model=model,
        api_key=key,
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
        **kwargs,
    )


def default_chat_model(**kwargs: Any) -> BaseChatModel:
    """:func:`openai_chat_model` when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set, else
    an :class:`ExtractiveChatModel`, so the same code runs online and offline.

    Example:
        >>> model = default_chat_model()  # offline: ExtractiveChatModel  # doctest: +SKIP
    """
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return openai_chat_model(**kwargs)
    return ExtractiveChatModel(**kwargs)


# -- the context format --------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One numbered source of a prompt's context.

    Example:
        >>> parse_sources("[1] Paris guide: Paris is the capital of France.")
        [Source(index=1, text='Paris is the capital of France.', title='Paris guide')]
    """

    index: int
    text: str
    title: str | None = None


_SOURCE_LINE = re.compile(r"^\s*\[(\d+)\]\s?(.*)$")
_QUESTION_LINE = re.compile(r"^\s*(?:question|q|问题|質問)\s*[:\uff1a]\s*(.*)$", re.IGNORECASE)
# A title is a short prefix with no sentence end in it ("notes.md" is fine, "Done. Next" is not).
_TITLE = re.compile(r"^((?:[^.!?\u3002\uff01\uff1f:\n]|[.!?](?=\S)){1,80}):\s+(\S.*)$", re.DOTALL)


def format_sources(sources: Iterable[Document | Source | str]) -> str:
    """Number sources ``[1]``, ``[2]``, ... one per line, in the format :func:`parse_sources` reads.

    A document's title is ``metadata["title"]``, else ``metadata["source"]``. Whitespace runs
    (newlines included) become one space so that each source stays on its line.

    Example:
        >>> print(format_sources([Document("Paris is in France.", metadata={"title": "Paris"}),
        ...                       "Berlin is in Germany."]))
        [1] Paris: Paris is in France.
        [2] Berlin is in Germany.
    """
    lines = []
    for number, source in enumerate(sources, start=1):
        if isinstance(source, Document):
            title = source.metadata.get("title") or source.metadata.get("source")
            text = source.page_content
        elif isinstance(source, Source):
            title, text = source.title, source.text
        else:
            title, text = None, source
        body = " ".join(text.split())
        head = " ".join(str(title).replace(":", " -").split()) if title else ""
        lines.append(f"[{number}] {head}: {body}" if head else f"[{number}] {body}")
    return "\n".join(lines)


def parse_sources(text: str) -> list[Source]:
    """The numbered sources in ``text``: each ``[n] ...`` line, plus any lines that follow it up
    to a blank line, another source, or a ``Question:`` line. The first source numbered ``n``
    wins.

    Example:
        >>> parse_sources("[1] A.\\n[2] T: B.")
        [Source(index=1, text='A.', title=None), Source(index=2, text='B.', title='T')]
    """
    found: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _SOURCE_LINE.match(line)
        if match:
            index = int(match.group(1))
            current = [match.group(2).strip()] if index not in found else None
            if current is not None:
                found[index] = current
        elif current is not None and line.strip() and not _QUESTION_LINE.match(line):
            current.append(line.strip())
        else:
            current = None
    sources = []
    for index, parts in found.items():
        body = " ".join(p for p in parts if p)
        title_match = _TITLE.match(body)
        if title_match:
            sources.append(Source(index, title_match.group(2), title_match.group(1).strip()))
        else:
            sources.append(Source(index, body))
    return sources


# -- the extractive model ------------------------------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECE = re.compile(rf"[{_CJK}][^\S\n]*|[^\s{_CJK}]+\s*|\s+")
_TERM = re.compile(rf"[{_CJK}]+|(?:(?![{_CJK}])[^\W_])+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)|(?<=[\u3002\uff01\uff1f])")
_CITATION = re.compile(r"\[\d+\]")

_STOP_WORDS_TEXT = (
    "a about above after again against all also am an and any are as at be because been "
    "before being below between both but by can could describe did do does doing down "
    "during each explain few for from further give had has have having he her here hers him "
    "his how i if in into is it its itself just know let list me more most my name no nor not "
    "of off on once only or other our out over own please same she should show so some such "
    "tell than that the their them then there these they this those through to too under "
    "until up us very was we were what when where which while who whom whose why will with "
    "would you your many much"
)
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
# Function words carry no topic; dropping them keeps CJK bigrams about content words.
_CJK_STOP = re.compile(
    "什么时候|什么|时候|哪里|哪儿|怎么|为什么|多少|如何|是否|请问|"
    "[的了是在吗呢吧啊呀和与及或也都这那个些谁为何请之其于而就被把我你他她它们"
    "のはがをにでともかねよ]"
)


@memo_by_bytes(4 * 2**20)
def _terms(text: str) -> frozenset[str]:
    # Cached: a knowledge base's sentences come back in answer after answer. By bytes, so that
    # large distinct questions cannot grow it without bound.
    terms: set[str] = set()
    for run in _TERM.findall(text.lower()):
        if "\u3040" <= run[0] <= "\ufaff":
            # Bigrams stand in for CJK words; they never span a function word.
            for segment in _CJK_STOP.split(run):
                if len(segment) == 1:
                    terms.add(segment)
                terms.update(segment[i : i + 2] for i in range(len(segment) - 1))
        elif run not in _STOP_WORDS and (len(run) > 1 or run.isdigit()):
            terms.add(stem(run))
    return frozenset(terms)


@memo_by_bytes(2 * 2**20)
def _sentences(text: str) -> tuple[str, ...]:
    # Cached like _terms: the same knowledge-base chunks are split answer after answer.
    return tuple(s.strip() for s in _SENTENCE_BREAK.split(text) if s and s.strip())


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "\n".join(
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, str) or part.get("type") == "text"
    )


def _question(text: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _QUESTION_LINE.match(line)
        if match:
            return "\n".join([match.group(1), *lines[i + 1 :]]).strip()
    kept: list[str] = []
    in_source = False
    for line in lines:
        if _SOURCE_LINE.match(line):
            in_source = True
        elif not line.strip():
            in_source = False
        elif not in_source:
            kept.append(line)
    return "\n".join(kept).strip()


_Candidate = tuple[int, str, frozenset[str]]
_WORDS = re.compile(r"[^\W\d_][\w'-]*[^\W_]")
_VECTORS_KEPT = 20_000
_FOLLOWING = 0.5


@dataclass(frozen=True)
class _Answer:
    text: str
    sources: tuple[int, ...]


class ExtractiveChatModel(BaseChatModel):
    """An extractive chat model: it answers only by quoting its context, so it never invents.

    It reads the numbered sources in the prompt (see :func:`format_sources`), scores each
    sentence by the IDF-weighted share of the question's terms it contains (stop words removed,
    CJK text as character bigrams), and answers with the best sentences verbatim, each followed
    by its citation, e.g. ``Paris is the capital of France. [1]``. When no sentence reaches
    ``min_relevance``, or the prompt has no sources, it answers :data:`NO_ANSWER`. The question
    is the last human message's text after ``Question:``, else that message minus its sources.

    Deterministic, offline, streams word by word, and reports usage counted by tiktoken
    (:func:`weft.components.tokens.count_tokens`, offline) or ``token_counter``. It has no
    tool calling or structured output.

    Example:
        >>> model = ExtractiveChatModel()
        >>> prompt = format_sources(["Paris is the capital of France.", "Cats purr."])
        >>> model.invoke(f"{prompt}\\n\\nQuestion: What is the capital of France?").content
        'Paris is the capital of France. [1]'
        >>> model.invoke(f"{prompt}\\n\\nQuestion: Who wrote Hamlet?").content
        'The knowledge base has no answer to this question.'
    """

    model_name: str = Field(default="extractive", alias="model")
    min_relevance: float | None = None
    """The least relevance (0..1) a quoted sentence must have: the IDF-weighted share of the
    question's stemmed terms it contains, close words counting in part when there are
    ``embeddings``. None: 0.3 with embeddings, 0.5 without (words alone are a weaker signal of
    meaning, so they must cover more of the question)."""
    embeddings: Embeddings | None = Field(default=None, exclude=True)
    """Embeds question and sentences for the semantic part of relevance; words only when None."""
    semantic_weight: float = Field(default=0.0, ge=0.0, le=1.0)
    """How much of relevance is the sentence's similarity to the question (the rest is the
    term share)."""
    synonym_similarity: float = Field(default=0.35, ge=0.0, le=1.0)
    """How similar two words must be for one to stand in for the other."""
    unknown_weight: float = Field(default=3.0, ge=1.0)
    """How many times its usual weight a question word that no source word matches, even in
    part, counts in the share a sentence misses."""
    max_sentences: int = 2
    """The most sentences an answer quotes."""
    token_counter: Callable[[str], int] | None = Field(default=None, exclude=True)
    """Counts tokens for usage metadata; tiktoken's ``cl100k_base`` when None."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    _vectors: dict[str, list[float]] = PrivateAttr(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "extractive"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "min_relevance": self._least_relevance(),
            "max_sentences": self.max_sentences,
            "semantic_weight": self.semantic_weight if self.embeddings is not None else 0.0,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="weft",
            ls_model_name=model if isinstance(model, str) else self.model_name,
            ls_model_type="chat",
        )
        if stop:
            params["ls_stop"] = stop
        return params

    def _answer(self, messages: Sequence[BaseMessage]) -> _Answer:
        humans = [m for m in messages if isinstance(m, HumanMessage)]
        question = _question(_text(humans[-1])) if humans else ""
        sources: dict[int, Source] = {}
        for message in messages:
            for source in parse_sources(_text(message)):
                sources.setdefault(source.index, source)
        candidates = [
            (source.index, sentence, _terms(sentence) | _terms(source.title or ""))
            for source in sources.values()
            for sentence in _sentences(source.text)
        ]
        focus = focus_of(question)
        wanted = _terms(question)
        if focus is not None:
            # "How long is the warranty?" is about the warranty; "long" says what is asked.
            wanted = wanted - {stem(w) for w in QUESTION_FORM} or wanted
        if not wanted or not candidates:
            return _Answer(NO_ANSWER, ())
        relevance = self._relevance(question, wanted, candidates)
        ranked = sorted(range(len(candidates)), key=lambda i: (-relevance[i], i))
        quoted: list[tuple[int, str]] = []
        least = self._least_relevance()
        for i in ranked:
            index, sentence, _ = candidates[i]
            if relevance[i] < least or len(quoted) >= self.max_sentences:
                break
            if fits_focus(focus, sentence, question) and sentence not in (s for _, s in quoted):
                quoted.append((index, sentence))
                # A further sentence must be nearly as relevant as the first one quoted.
                least = max(least, _FOLLOWING * relevance[i])
        if not quoted:
            return _Answer(NO_ANSWER, ())
        text = " ".join(f"{sentence} [{index}]" for index, sentence in quoted)
        return _Answer(text, tuple(dict.fromkeys(index for index, _ in quoted)))

    def _least_relevance(self) -> float:
        if self.min_relevance is not None:
            return self.min_relevance
        return 0.3 if self.embeddings is not None else 0.5

    def _relevance(
        self, question: str, wanted: frozenset[str], candidates: Sequence[_Candidate]
    ) -> list[float]:
        """Each candidate's relevance: the IDF-weighted share of the question's terms it holds.

        With ``embeddings``, a question word the sentence lacks still counts in part when the
        sentence has a word close in meaning ("heavy" and "weighs", "bigger" and "larger"): by
        their similarity, from ``synonym_similarity`` up. The share is then blended with the
        similarity of the whole sentence to the question (``semantic_weight``).
        """
        total = len(candidates)
        weights = {
            term: math.log((total + 1) / (sum(term in c[2] for c in candidates) + 0.5))
            for term in wanted
        }
        whole = sum(weights.values()) or 1.0
        lexical = [sum(weights[t] for t in wanted & terms) / whole for _, _, terms in candidates]
        if self.embeddings is None:
            return lexical
        words = {stem(w): w for w in _WORDS.findall(question.lower()) if stem(w) in wanted}
        sentence_words = [
            {w for w in _WORDS.findall(sentence.lower()) if w not in _STOP_WORDS}
            for _, sentence, _ in candidates
        ]
        vocabulary = sorted(set().union(*sentence_words) | set(words.values()))
        vectors = dict(zip(vocabulary, self._embed(vocabulary), strict=True))
        # A question word nothing in the sources matches, even in part, names something they
        # do not cover ("the CEO", "a Zigbee hub"); it weighs more in the share they miss.
        closeness: dict[str, list[float]] = {}
        for term, word in words.items():
            closeness[term] = [
                1.0
                if term in terms
                else max((cosine(vectors[word], vectors[w]) for w in sentence_words[i]), default=0)
                for i, (_, _, terms) in enumerate(candidates)
            ]
        unknown = [t for t, row in closeness.items() if max(row) < self.synonym_similarity]
        whole += (self.unknown_weight - 1.0) * sum(weights[t] for t in unknown)
        meanings = [0.0] * len(candidates)
        if self.semantic_weight:
            wholes = self._embed([question, *(sentence for _, sentence, _ in candidates)])
            meanings = [max(0.0, cosine(wholes[0], v)) for v in wholes[1:]]
        scores = []
        for i, (_, _, terms) in enumerate(candidates):
            share = sum(weights[t] for t in wanted & terms)
            for term, row in closeness.items():
                if term not in terms and row[i] >= self.synonym_similarity:
                    share += weights[term] * row[i]
            soft = share / whole
            scores.append((1.0 - self.semantic_weight) * soft + self.semantic_weight * meanings[i])
        return scores

    def _embed(self, texts: list[str]) -> list[list[float]]:
        """Embeddings of ``texts``; sentences are remembered (up to ``_VECTORS_KEPT``)."""
        assert self.embeddings is not None
        known = self._vectors
        found = {t: known.get(t) for t in texts}
        missing = [t for t, vector in found.items() if vector is None]
        if missing:
            fresh = dict(zip(missing, self.embeddings.embed_documents(missing), strict=True))
            found.update(fresh)
            if len(known) + len(fresh) > _VECTORS_KEPT:
                known.clear()
            known.update(fresh)
        return [v for v in (found[t] for t in texts) if v is not None]

    def _usage(self, messages: Sequence[BaseMessage], text: str) -> UsageMetadata:
        count = self.token_counter or count_tokens
        prompt = sum(count(_text(m)) for m in messages)
        completion = count(text)
        # A cast, not the TypedDict's call: langchain-core's NotRequired keys read as required
        # to a checker that targets Python 3.10.
        usage = {"input_tokens": prompt, "output_tokens": completion}
        return cast(UsageMetadata, {**usage, "total_tokens": prompt + completion})

    def _metadata(self, answer: _Answer) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "finish_reason": "stop",
            "cited": list(answer.sources),
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer = self._answer(messages)
        message = AIMessage(
            content=answer.text,
            usage_metadata=self._usage(messages, answer.text),
            response_metadata=self._metadata(answer),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _chunks(self, messages: list[BaseMessage]) -> list[ChatGenerationChunk]:
        """The answer as word-sized chunks; the last one carries usage and metadata."""
        answer = self._answer(messages)
        pieces = _PIECE.findall(answer.text)
        chunks = [ChatGenerationChunk(message=AIMessageChunk(content=p)) for p in pieces[:-1]]
        last = AIMessageChunk(
            content=pieces[-1] if pieces else "",
            usage_metadata=self._usage(messages, answer.text),
            response_metadata=self._metadata(answer),
            chunk_position="last",
        )
        return [*chunks, ChatGenerationChunk(message=last)]

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages):
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # The answer is computed once, off the event loop; langchain-core's default would hop
        # to a worker thread for every chunk.
        chunks = await run_in_executor(None, self._chunks, messages)
        for chunk in chunks:
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


# Keep citation parsing next to the format it reads; the context packer and evals reuse it.
def cited_sources(text: str) -> list[int]:
    """The source numbers cited as ``[n]`` in ``text``, in first-seen order.

    Example:
        >>> cited_sources("A. [2] B. [1] C. [2]")
        [2, 1]
    """
    return list(dict.fromkeys(int(m[1:-1]) for m in _CITATION.findall(text)))
