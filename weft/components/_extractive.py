"""The extractive model: answers by quoting the context sentences most relevant to the question."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, PrivateAttr

from weft.components._answering import (
    _EMAIL,
    Focus,
    asked_about,
    cosine,
    fits_focus,
    focus_of,
    names_of,
    question_form,
    stem,
)
from weft.components._context import (
    _QUESTION_LINE,
    _SOURCE_LINE,
    _TOPIC_LINE,
    Source,
    parse_sources,
)
from weft.components._memo import memo_by_bytes
from weft.components.tokens import count_tokens

if TYPE_CHECKING:
    from weft.components._minilm import Words

__all__ = ["NO_ANSWER", "ExtractiveChatModel", "WordEncoder"]

NO_ANSWER = "The knowledge base has no answer to this question."
"""What :class:`ExtractiveChatModel` says when no context sentence is relevant enough."""


_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECE = re.compile(rf"[{_CJK}][^\S\n]*|[^\s{_CJK}]+\s*|\s+")
_TERM = re.compile(rf"[{_CJK}]+|(?:(?![{_CJK}])[^\W_])+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)|(?<=[\u3002\uff01\uff1f])")

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


# An email or web address is one term: "hello" in "hello@shop.example" is no greeting.
_ADDRESS = re.compile(rf"{_EMAIL.pattern}|\bhttps?://[^\s<>\"']+|\bwww\.[^\s<>\"']+")


def _without_addresses(text: str) -> str:
    return _ADDRESS.sub(" ", text)


@memo_by_bytes(4 * 2**20)
def _terms(text: str) -> frozenset[str]:
    # Cached: a knowledge base's sentences come back in answer after answer. By bytes, so that
    # large distinct questions cannot grow it without bound.
    terms: set[str] = {a.lower().rstrip(".,;:") for a in _ADDRESS.findall(text)}
    text = _without_addresses(text)
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


# Words that end in a full stop without ending the sentence: "e.g. Paris", "Dr. Tamm".
_ABBREVIATIONS = frozenset(["e.g.", "i.e.", "mr.", "mrs.", "ms.", "dr.", "st.", "no.", "vs."])


def _ends_sentence(text: str, end: int, following: str) -> bool:
    """Whether the full stop just before ``end`` ends a sentence: not when the next word is in
    lower case ("from 8 a.m. to 6 p.m."), nor after an abbreviation or an initial ("J. Smith")."""
    if following[:1].islower():
        return False
    before = text[:end].rsplit(None, 1)
    word = before[-1].lower() if before else ""
    return word not in _ABBREVIATIONS and not (len(word) == 2 and word[0].isalpha())


@memo_by_bytes(2 * 2**20)
def _sentences(text: str) -> tuple[str, ...]:
    """``text`` cut into sentences, each stripped, in order.

    Cached like _terms: the same knowledge-base chunks are split answer after answer.
    """
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        if _ends_sentence(text, match.start(), text[match.end() : match.end() + 1]):
            pieces.append(text[start : match.start()])
            start = match.end()
    pieces.append(text[start:])
    return tuple(s.strip() for s in pieces if s.strip())


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "\n".join(
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, str) or part.get("type") == "text"
    )


def _question(text: str) -> tuple[str, str]:
    """The question a prompt asks, and the earlier topic a condensed follow-up carries on an
    ``Earlier topic:`` line ("" when none; see :func:`question_with_topic`)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _QUESTION_LINE.match(line)
        if match:
            rest = [match.group(1), *lines[i + 1 :]]
            topics = [m.group(1).strip() for m in map(_TOPIC_LINE.match, rest) if m]
            asked = [part for part in rest if not _TOPIC_LINE.match(part)]
            return "\n".join(asked).strip(), " ".join(topics)
    kept: list[str] = []
    in_source = False
    for line in lines:
        if _SOURCE_LINE.match(line):
            in_source = True
        elif not line.strip():
            in_source = False
        elif not in_source:
            kept.append(line)
    return "\n".join(kept).strip(), ""


_Candidate = tuple[int, str, frozenset[str]]


@runtime_checkable
class WordEncoder(Protocol):
    """Reads each word of a text in context: ``embed_words`` gives, per text, its words
    (lower-cased) and a matrix with one unit vector per word, as
    :meth:`~weft.components._minilm.MiniLMEmbeddings.embed_words` does."""

    def embed_words(self, texts: list[str]) -> list[Words]: ...


def _idf(term: str, candidates: Sequence[_Candidate]) -> float:
    """How rare ``term`` is among the candidate sentences (smoothed IDF; > 0 even when all
    hold it)."""
    found = sum(term in c[2] for c in candidates)
    return math.log((len(candidates) + 1) / (found + 0.5))


def _names_another(question: str, index: int, candidates: Sequence[_Candidate]) -> bool:
    """Whether candidate ``index`` names something else where the question names a thing the
    sources know: "How many study rooms does Northgate Branch have?" is not answered by "The
    Central Library has six study rooms", though Northgate Branch is in the sources. A name in
    the sentence's source title counts as held."""
    _, sentence, terms = candidates[index]
    asked = {stem(n) for n in names_of(question)}
    named = {stem(n) for n in names_of(sentence)}
    missing = any(
        name not in terms and any(name in c[2] for c in candidates) for name in asked - named
    )
    return missing and bool(named - asked)


def _content(word: str) -> bool:
    """Whether a word of the question says what it is about: a number, or a word of two or
    more letters that is not a stop word."""
    return word.isdigit() or (len(word) > 1 and word not in _STOP_WORDS)


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
    ``min_relevance``, or the prompt has no sources, it answers :data:`NO_ANSWER`. With a
    ``word_encoder`` (strict answers) a sentence is quoted only if it meets every word of the
    question. The question is the last human message's text after ``Question:``, else that
    message minus its sources; an ``Earlier topic:`` line under it (see
    :func:`question_with_topic`) adds the words a condensed follow-up borrowed, which count for
    relevance, and spares the follow-up the strict check.

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
    semantic_weight: float = Field(default=0.1, ge=0.0, le=1.0)
    """How much of relevance is the sentence's similarity to the question (the rest is the
    term share), when there are ``embeddings``. 0.1 was the best setting on the tuning part of
    the ``rag-paraphrase`` and on ``rag-multiturn`` (0.0 to 0.4 tried, with ``min_relevance``
    0.2 to 0.4): more lets sentences that share no word with the question crowd out refusals."""
    synonym_similarity: float = Field(default=0.35, ge=0.0, le=1.0)
    """How similar two words must be for one to stand in for the other."""
    unknown_weight: float = Field(default=3.0, ge=1.0)
    """How many times its usual weight a question word that no source word matches, even in
    part, counts in the share a sentence misses."""
    word_encoder: WordEncoder | None = Field(default=None, exclude=True)
    """Reads words in their sentence, to check each sentence before it is quoted (strict
    answers: the RAG graph passes :class:`~weft.components._minilm.MiniLMEmbeddings` when
    ``strict_answers`` is set). Every word of the question must be met in the sentence, by
    itself or by a word that means the same there, at ``min_word_match`` or better; a word
    common in the sources may miss by more, the rarest by least. "How much does a bag of spelt
    rolls weigh?" is then refused rather than answered with "Spelt rolls are sold in bags of
    six": nothing there reads as a weight. None: no such check."""
    min_word_match: float = Field(default=0.5, ge=0.0, le=1.0)
    """How well the question's least matched word must be matched (see ``word_encoder``).
    0.5 was the best setting on the tuning parts of the three ``rag-paraphrase`` suites (0.4 to
    0.7 tried)."""
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
        asked, topic = _question(_text(humans[-1])) if humans else ("", "")
        # A follow-up is scored with the topic it borrowed, as retrieval searched for it.
        question = f"{asked} {topic}".strip()
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
            # When only such words are left, those the sources know ("email", not "address").
            known = frozenset().union(*(terms for _, _, terms in candidates))
            form = {stem(w) for w in question_form(focus)}
            wanted = wanted - form or wanted & known or wanted
        if not wanted or not candidates:
            return _Answer(NO_ANSWER, ())
        # "How much does a spare panel cost?" is answered by a sentence that names the spare
        # panel (or words close to it), not by the price of something else.
        required = _terms(" ".join(asked_about(question))) & wanted
        relevance, covered = self._relevance(question, wanted, candidates, required)
        ranked = sorted(range(len(candidates)), key=lambda i: (-relevance[i], i))
        quoted: list[tuple[int, str]] = []
        least = self._least_relevance()
        for i in ranked:
            index, sentence, _ = candidates[i]
            if relevance[i] < least or len(quoted) >= self.max_sentences:
                break
            if (
                covered[i]
                and fits_focus(focus, sentence, question)
                and not _names_another(question, i, candidates)
                and sentence not in (s for _, s in quoted)
                and (
                    bool(topic)
                    or self._word_match(question, focus, i, candidates) >= self.min_word_match
                )
            ):
                quoted.append((index, sentence))
                # A further sentence must be nearly as relevant as the first one quoted.
                least = max(least, _FOLLOWING * relevance[i])
        if not quoted:
            return _Answer(NO_ANSWER, ())
        text = " ".join(f"{sentence} [{index}]" for index, sentence in quoted)
        return _Answer(text, tuple(dict.fromkeys(index for index, _ in quoted)))

    def _word_match(
        self, question: str, focus: Focus | None, index: int, candidates: Sequence[_Candidate]
    ) -> float:
        """How well candidate ``index`` meets the question's least matched word, each
        word's miss weighted by its IDF over the candidates (the rarest counts fully): 1.0 when
        there is no ``word_encoder``.

        A question word the sentence holds (by its stem) matches fully; another matches by its
        closest word in the sentence, both read in context by ``word_encoder``. A follow-up
        that the offline condense step completed with an earlier topic is not judged (the
        caller skips it): its own words are too few, and the borrowed ones are not what it asks.
        """
        if self.word_encoder is None:
            return 1.0
        (asked, asked_vectors), (said, said_vectors) = self.word_encoder.embed_words(
            [question, candidates[index][1]]
        )
        form = question_form(focus)
        kept = [i for i, w in enumerate(asked) if _content(w) and w not in form]
        said_vectors = said_vectors[[i for i, w in enumerate(said) if _content(w)]]
        if not kept:
            return 1.0
        terms = candidates[index][2]
        misses: list[tuple[float, float]] = []
        for i in kept:
            term = stem(asked[i])
            closest = float((said_vectors @ asked_vectors[i]).max()) if len(said_vectors) else 0.0
            matched = 1.0 if term in terms else closest
            misses.append((_idf(term, candidates), 1.0 - matched))
        rarest = max(weight for weight, _ in misses) or 1.0
        return 1.0 - max(weight / rarest * miss for weight, miss in misses)

    def _least_relevance(self) -> float:
        if self.min_relevance is not None:
            return self.min_relevance
        return 0.3 if self.embeddings is not None else 0.5

    def _relevance(
        self,
        question: str,
        wanted: frozenset[str],
        candidates: Sequence[_Candidate],
        required: frozenset[str] = frozenset(),
    ) -> tuple[list[float], list[bool]]:
        """Each candidate's relevance: the IDF-weighted share of the question's terms it holds.

        With ``embeddings``, a question word the sentence lacks still counts in part when the
        sentence has a word close in meaning ("heavy" and "weighs", "bigger" and "larger"): by
        their similarity, from ``synonym_similarity`` up. The share is then blended with the
        similarity of the whole sentence to the question (``semantic_weight``).
        """
        weights = {term: _idf(term, candidates) for term in wanted}
        whole = sum(weights.values()) or 1.0
        lexical = [sum(weights[t] for t in wanted & terms) / whole for _, _, terms in candidates]
        if self.embeddings is None:
            return lexical, [required <= _terms(sentence) for _, sentence, _ in candidates]
        words = {stem(w): w for w in _WORDS.findall(question.lower()) if stem(w) in wanted}
        sentence_words = [
            {
                w
                for w in _WORDS.findall(_without_addresses(sentence).lower())
                if w not in _STOP_WORDS
            }
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
        covered = [
            all(
                t in _terms(sentence)
                or max(
                    (cosine(vectors[words[t]], vectors[w]) for w in sentence_words[i]), default=0
                )
                >= self.synonym_similarity
                for t in required
                if t in words
            )
            for i, (_, sentence, _) in enumerate(candidates)
        ]
        return scores, covered

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
