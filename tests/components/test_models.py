"""Chat models: the OpenAI model against the local server, and the offline extractive model."""

# CJK questions end in a full-width question mark on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import openai
import pytest
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel

from weft.components import models
from weft.components.embeddings import MiniLMEmbeddings, WordLlamaEmbeddings
from weft.components.models import (
    DEFAULT_MODEL,
    NO_ANSWER,
    ExtractiveChatModel,
    OpenAIChatModel,
    Source,
    cited_sources,
    default_chat_model,
    format_sources,
    openai_chat_model,
    parse_sources,
    question_with_topic,
)
from weft.components.tokens import count_tokens
from weft.core.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ModelError,
    ProviderUnavailableError,
)
from weft.testing import Fault, OpenAIServer, Reply, ToolCall

# -- the OpenAI model --------------------------------------------------------------------------


@pytest.fixture
def model(server: OpenAIServer) -> OpenAIChatModel:
    return openai_chat_model(base_url=server.base_url, api_key="sk-test", max_retries=0)


@pytest.fixture
async def amodel(server: OpenAIServer) -> AsyncIterator[OpenAIChatModel]:
    # langchain-openai caches its default async HTTP client across event loops; an own client,
    # closed here, keeps a connection from outliving this test's loop.
    async with openai.DefaultAsyncHttpxClient() as http:
        yield openai_chat_model(
            base_url=server.base_url, api_key="sk-test", max_retries=0, http_async_client=http
        )


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class City(BaseModel):
    name: str
    country: str


def chunks_of(model: BaseChatModel, prompt: str) -> list[AIMessageChunk]:
    return [c for c in model.stream(prompt) if isinstance(c, AIMessageChunk)]


def total(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    return whole


@pytest.mark.server
def test_invoke_returns_the_reply_with_usage(server: OpenAIServer, model: OpenAIChatModel) -> None:
    server.script("Paris is the capital.")
    message = model.invoke("What is the capital of France?")

    assert message.content == "Paris is the capital."
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == 5
    assert message.usage_metadata["input_tokens"] == 7
    [request] = server.requests
    assert request.model == DEFAULT_MODEL
    assert request.headers["authorization"] == "Bearer sk-test"


@pytest.mark.server
def test_stream_yields_token_chunks_and_reports_usage(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.script("Paris is the capital.")
    chunks = chunks_of(model, "What is the capital of France?")

    texts = [c.content for c in chunks if c.content]
    assert texts == ["Paris ", "is ", "the ", "capital."]
    usage = total(chunks).usage_metadata
    assert usage is not None
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (7, 5, 12)
    assert server.requests[0].body["stream_options"] == {"include_usage": True}


@pytest.mark.server
async def test_astream_yields_token_chunks(server: OpenAIServer, amodel: OpenAIChatModel) -> None:
    server.script("one two three")
    texts = [c.content async for c in amodel.astream("count") if c.content]
    assert texts == ["one ", "two ", "three"]


@pytest.mark.server
def test_streaming_through_a_prompt_chain_stays_token_by_token(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.script("alpha beta gamma")
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | model
    texts = [c.content for c in chain.stream({"question": "letters?"}) if c.content]

    assert texts == ["alpha ", "beta ", "gamma"]
    assert server.requests[0].messages == [{"role": "user", "content": "letters?"}]


@pytest.mark.server
def test_bind_tools_sends_tools_and_parses_tool_calls(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.script(Reply(tool_calls=[ToolCall("add", {"a": 1, "b": 2}, id="call_1")]))
    message = model.bind_tools([add]).invoke("What is 1 + 2?")

    assert message.tool_calls == [
        {"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1", "type": "tool_call"}
    ]
    [tool] = server.requests[0].body["tools"]
    assert tool["function"]["name"] == "add"
    assert tool["function"]["parameters"]["required"] == ["a", "b"]


@pytest.mark.server
def test_streamed_tool_call_chunks_add_up_to_the_call(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.script(Reply(tool_calls=[ToolCall("add", {"a": 40, "b": 2})]))
    chunks = [c for c in model.bind_tools([add]).stream("40 + 2?") if isinstance(c, AIMessageChunk)]

    assert sum(bool(c.tool_call_chunks) for c in chunks) > 1
    [call] = total(chunks).tool_calls
    assert (call["name"], call["args"]) == ("add", {"a": 40, "b": 2})


@pytest.mark.server
def test_structured_output_with_json_schema(server: OpenAIServer, model: OpenAIChatModel) -> None:
    server.script(json.dumps({"name": "Paris", "country": "France"}))
    city = model.with_structured_output(City).invoke("Capital of France?")

    assert city == City(name="Paris", country="France")
    response_format = server.requests[0].body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "City"


@pytest.mark.server
def test_structured_output_with_function_calling(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.script(Reply(tool_calls=[ToolCall("City", {"name": "Rome", "country": "Italy"})]))
    city = model.with_structured_output(City, method="function_calling").invoke("Italy?")
    assert city == City(name="Rome", country="Italy")


@pytest.mark.server
def test_retry_after_is_honoured_and_the_retry_succeeds(server: OpenAIServer) -> None:
    server.script(Fault.rate_limit(retry_after=1), "made it")
    model = openai_chat_model(base_url=server.base_url, max_retries=2)

    assert model.invoke("hi").content == "made it"
    first, second = server.requests
    assert len(server.requests) == 2
    # Without Retry-After the SDK's first backoff is at most 0.5 s, so a wait of a second or
    # more shows the header was read. A lower bound only: a slow machine cannot break it.
    assert second.received_at - first.received_at >= 0.95


@pytest.mark.server
def test_server_errors_are_retried_until_one_succeeds(server: OpenAIServer) -> None:
    server.script(
        Fault.server_error(retry_after=0.01), Fault.server_error(503, retry_after=0.01), "ok"
    )
    model = openai_chat_model(base_url=server.base_url, max_retries=2)

    assert model.invoke("hi").content == "ok"
    assert len(server.requests) == 3


@pytest.mark.server
def test_rate_limit_after_every_retry_is_provider_unavailable(server: OpenAIServer) -> None:
    server.script(*[Fault.rate_limit(retry_after=0.01)] * 2)
    model = openai_chat_model(base_url=server.base_url, max_retries=1)

    with pytest.raises(ProviderUnavailableError) as caught:
        model.invoke("hi")
    message = str(caught.value)
    assert "HTTP 429" in message
    assert "after 1 retries" in message
    assert server.base_url in message
    assert "'gpt-4o-mini'" in message
    assert "raise max_retries" in message
    assert len(server.requests) == 2
    assert isinstance(caught.value.__cause__, openai.RateLimitError)


@pytest.mark.server
def test_server_error_after_every_retry_is_provider_unavailable(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.script(Fault.server_error(502))
    with pytest.raises(ProviderUnavailableError, match=r"HTTP 502"):
        model.invoke("hi")


@pytest.mark.server
def test_rejected_key_is_an_authentication_error_that_says_how_to_fix_it() -> None:
    with OpenAIServer(api_key="sk-right") as server:
        model = openai_chat_model(base_url=server.base_url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(AuthenticationError) as caught:
            model.invoke("hi")

    message = str(caught.value)
    assert "HTTP 401" in message
    assert "Incorrect API key provided." in message
    assert "set OPENAI_API_KEY" in message
    assert server.base_url in message
    assert isinstance(caught.value.__cause__, openai.AuthenticationError)


@pytest.mark.server
def test_bad_request_carries_the_provider_message(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.script(Fault.bad_request("'temperature' must be at most 2."))
    with pytest.raises(BadRequestError) as caught:
        model.invoke("hi")

    message = str(caught.value)
    assert "HTTP 400" in message
    assert "'temperature' must be at most 2." in message
    assert server.base_url in message


@pytest.mark.server
def test_unknown_model_says_which_model_and_where_to_look(server: OpenAIServer) -> None:
    model = openai_chat_model("gpt-nope", base_url=server.base_url, max_retries=0)
    with pytest.raises(BadRequestError) as caught:
        model.invoke("hi")

    message = str(caught.value)
    assert "the model 'gpt-nope' is unknown" in message
    assert "set WEFT_MODEL" in message
    assert f"GET {server.base_url}/models" in message


@pytest.mark.server
def test_unknown_model_answered_with_400_is_recognised(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    # Some OpenAI-compatible servers answer an unknown model with 400 instead of 404.
    server.script(Fault.bad_request("The model `x` does not exist.", code="model_not_found"))
    with pytest.raises(BadRequestError, match=r"is unknown .*set WEFT_MODEL"):
        model.invoke("hi")


@pytest.mark.server
async def test_async_errors_are_mapped_too(server: OpenAIServer, amodel: OpenAIChatModel) -> None:
    server.script(Fault.unauthorized(), Fault.unauthorized())
    with pytest.raises(AuthenticationError):
        await amodel.ainvoke("hi")
    with pytest.raises(AuthenticationError):
        async for _ in amodel.astream("hi"):
            pass


@pytest.mark.server
def test_slow_first_byte_times_out_as_provider_unavailable(server: OpenAIServer) -> None:
    server.script(Reply("too late", delay=1.0))
    model = openai_chat_model(base_url=server.base_url, timeout=0.2, max_retries=0)

    with pytest.raises(ProviderUnavailableError) as caught:
        model.invoke("hi")
    assert "did not answer within 0.2s" in str(caught.value)
    assert "raise timeout=" in str(caught.value)
    assert len(server.requests) == 1


@pytest.mark.server
def test_dropped_stream_is_an_error_after_the_chunks_that_arrived(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.script(Reply("one two three four five", fault=Fault.drop(after_chunks=3)))
    received: list[str] = []
    with pytest.raises(ProviderUnavailableError) as caught:
        for chunk in model.stream("count"):
            received.append(str(chunk.content))

    assert "".join(received) == "one two "
    assert "dropped mid-response" in str(caught.value)
    assert "RemoteProtocolError" in str(caught.value)


@pytest.mark.server
def test_malformed_chunk_is_a_model_error(server: OpenAIServer, model: OpenAIChatModel) -> None:
    server.script(Reply("one two", fault=Fault.malformed(after_chunks=2)))
    with pytest.raises(ModelError, match=r"malformed response"):
        list(model.stream("count"))


# -- configuration -----------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "WEFT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_factory_reads_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_API_KEY", "sk-env")
    clean_env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    clean_env.setenv("WEFT_MODEL", "gpt-env")
    model = openai_chat_model(timeout=5, max_retries=4)

    assert model.model_name == "gpt-env"
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.openai_api_key is not None
    assert model.openai_api_key.get_secret_value() == "sk-env"
    assert (model.request_timeout, model.max_retries, model.stream_usage) == (5, 4, True)


def test_arguments_win_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_API_KEY", "sk-env")
    clean_env.setenv("WEFT_MODEL", "gpt-env")
    model = openai_chat_model("gpt-arg", api_key="sk-arg", temperature=0.1)

    assert model.model_name == "gpt-arg"
    assert model.openai_api_key is not None
    assert model.openai_api_key.get_secret_value() == "sk-arg"
    assert model.temperature == 0.1


def test_no_key_and_no_base_url_is_a_configuration_error(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match=r"set OPENAI_API_KEY.*ExtractiveChatModel"):
        openai_chat_model()


@pytest.mark.server
def test_a_local_base_url_needs_no_key(clean_env: pytest.MonkeyPatch, server: OpenAIServer) -> None:
    clean_env.setenv("OPENAI_BASE_URL", server.base_url)
    server.script("local")
    assert openai_chat_model().invoke("hi").content == "local"


def test_default_chat_model_is_extractive_offline(clean_env: pytest.MonkeyPatch) -> None:
    assert isinstance(default_chat_model(), ExtractiveChatModel)


@pytest.mark.parametrize("variable", ["OPENAI_API_KEY", "OPENAI_BASE_URL"])
def test_default_chat_model_is_openai_when_configured(
    clean_env: pytest.MonkeyPatch, variable: str
) -> None:
    clean_env.setenv(variable, "http://127.0.0.1:9/v1" if "URL" in variable else "sk-x")
    assert isinstance(default_chat_model(), OpenAIChatModel)


# -- the extractive model ----------------------------------------------------------------------

SOURCES = [
    Document(
        "Paris is the capital of France. The Eiffel Tower was completed in 1889.",
        metadata={"title": "Paris"},
    ),
    Document(
        "Berlin is the capital of Germany. Berlin has more than 170 museums.",
        metadata={"source": "berlin.md"},
    ),
    "巴黎是法国的首都。埃菲尔铁塔建于1889年。",
]
CONTEXT = format_sources(SOURCES)
QUESTIONS = [
    "What is the capital of France?",
    "When was the Eiffel Tower completed?",
    "How many museums does Berlin have?",
    "Who wrote Hamlet?",
    "What is the capital of Japan?",
    "法国的首都是哪里？",
    "埃菲尔铁塔是什么时候建的？",
    "日本的首都是哪里？",
]


def ask(question: str, model: ExtractiveChatModel | None = None) -> str:
    model = model or ExtractiveChatModel()
    messages = [
        SystemMessage(f"Answer only from these sources.\n{CONTEXT}"),
        HumanMessage(question),
    ]
    return str(model.invoke(messages).content)


def test_context_format_is_one_numbered_line_per_source() -> None:
    assert CONTEXT.splitlines() == [
        "[1] Paris: Paris is the capital of France. The Eiffel Tower was completed in 1889.",
        "[2] berlin.md: Berlin is the capital of Germany. Berlin has more than 170 museums.",
        "[3] 巴黎是法国的首都。埃菲尔铁塔建于1889年。",
    ]


def test_parse_sources_reads_what_format_sources_writes() -> None:
    parsed = parse_sources(CONTEXT)
    assert [(s.index, s.title) for s in parsed] == [(1, "Paris"), (2, "berlin.md"), (3, None)]
    assert (
        parsed[0].text == "Paris is the capital of France. The Eiffel Tower was completed in 1889."
    )


def test_parse_sources_joins_continuation_lines_until_a_blank_or_question_line() -> None:
    text = "Context:\n[1] First line\nsecond line.\n\nNot a source.\n[2] B.\nQuestion: why?"
    assert parse_sources(text) == [Source(1, "First line second line."), Source(2, "B.")]


def test_a_prefix_with_a_sentence_end_is_not_a_title() -> None:
    assert parse_sources("[1] It rained. Note: bring a coat.") == [
        Source(1, "It rained. Note: bring a coat.")
    ]


def test_format_sources_keeps_titles_from_breaking_the_format() -> None:
    text = format_sources([Source(1, "Body\n  on two lines.", title="A: B")])
    assert text == "[1] A - B: Body on two lines."
    assert parse_sources(text) == [Source(1, "Body on two lines.", "A - B")]


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is the capital of France?", "Paris is the capital of France. [1]"),
        ("When was the Eiffel Tower completed?", "The Eiffel Tower was completed in 1889. [1]"),
        ("How many museums does Berlin have?", "Berlin has more than 170 museums. [2]"),
        ("法国的首都是哪里？", "巴黎是法国的首都。 [3]"),
        ("埃菲尔铁塔是什么时候建的？", "埃菲尔铁塔建于1889年。 [3]"),
    ],
)
def test_extractive_model_quotes_and_cites_the_right_source(question: str, answer: str) -> None:
    assert ask(question) == answer


@pytest.mark.parametrize(
    "question",
    ["Who wrote Hamlet?", "What is the capital of Japan?", "日本的首都是哪里？", "What is it?"],
)
def test_extractive_model_says_plainly_when_the_context_has_no_answer(question: str) -> None:
    assert ask(question) == NO_ANSWER


def test_extractive_model_without_sources_has_no_answer() -> None:
    assert ExtractiveChatModel().invoke("What is the capital of France?").content == NO_ANSWER


def test_extractive_model_finds_the_question_after_question_label() -> None:
    prompt = f"Use the context.\n{CONTEXT}\n\nQuestion: What is the capital of Germany?"
    assert ExtractiveChatModel().invoke(prompt).content == "Berlin is the capital of Germany. [2]"


def test_extractive_model_never_says_a_sentence_that_is_not_in_the_context() -> None:
    for question in QUESTIONS:
        answer = ask(question)
        if answer == NO_ANSWER:
            continue
        sentences = [s.strip() for s in re.split(r"\[\d+\]", answer) if s.strip()]
        assert sentences
        for sentence in sentences:
            assert sentence in CONTEXT, (question, sentence)


def test_extractive_model_is_deterministic() -> None:
    first = [ask(q) for q in QUESTIONS]
    assert [ask(q, ExtractiveChatModel()) for q in QUESTIONS] == first
    assert [ask(q) for q in QUESTIONS] == first


def test_extractive_model_splits_a_source_the_same_way_when_it_comes_back() -> None:
    # Sentences are split once per source text and reused; a reused split must be the fresh one.
    text = 'It ends. "Quoted!" (Then more?) 东京是首都。大阪很大。 Tail without a stop'
    fresh = models._sentences.__wrapped__(text)
    assert fresh == (
        "It ends.",
        '"Quoted!',
        "(Then more?",
        "东京是首都。",
        "大阪很大。",
        "Tail without a stop",
    )
    assert models._sentences(text) == fresh
    assert models._sentences(text) == fresh  # cached, and a tuple, so no caller can change it
    prompt = format_sources([text, "Tail without a stop"]) + "\n\nQuestion: Which tail has no stop?"
    first = ExtractiveChatModel().invoke(prompt).content
    assert ExtractiveChatModel().invoke(prompt).content == first == "Tail without a stop [1]"


def test_extractive_model_keeps_abbreviations_and_times_inside_their_sentence() -> None:
    text = (
        "The depot is open from 8 a.m. to 6 p.m. Lost items are kept for 90 days. "
        "Ask a librarian, e.g. Dr. Okafor. J. Smith founded it in 1901."
    )
    assert models._sentences(text) == (
        "The depot is open from 8 a.m. to 6 p.m.",
        "Lost items are kept for 90 days.",
        "Ask a librarian, e.g. Dr. Okafor.",
        "J. Smith founded it in 1901.",
    )
    prompt = format_sources([text]) + "\n\nQuestion: When is the depot open?"
    assert ExtractiveChatModel().invoke(prompt).content == (
        "The depot is open from 8 a.m. to 6 p.m. [1]"
    )


NEAR_MISS_SPELT = "How much does a bag of spelt rolls weigh?"


def test_extractive_model_with_a_word_encoder_quotes_only_sentences_that_meet_each_word() -> None:
    prompt = format_sources(
        [
            "The bakery's data protection officer is Tomas Lind. The shop answers emails "
            "within two days.",
            "A rye loaf weighs 800 grams. Spelt rolls are sold in bags of six.",
        ]
    )
    words = ExtractiveChatModel(embeddings=WordLlamaEmbeddings())
    strict = words.model_copy(update={"word_encoder": MiniLMEmbeddings()})
    near_miss = f"{prompt}\n\nQuestion: {NEAR_MISS_SPELT}"
    assert words.invoke(near_miss).content == "Spelt rolls are sold in bags of six. [2]"
    assert strict.invoke(near_miss).content == NO_ANSWER
    # A word that is missing but meant by another ("heavy", "weighs") still lets it stand.
    heavy = f"{prompt}\n\nQuestion: How heavy is a loaf of rye?"
    assert strict.invoke(heavy).content == "A rye loaf weighs 800 grams. [2]"
    assert strict.invoke(f"{prompt}\n\nQuestion: Who is the data protection officer?").content == (
        "The bakery's data protection officer is Tomas Lind. [1]"
    )
    # A follow-up completed with an earlier topic (on its own line) is not judged; a question
    # that goes on after its question mark is.
    asked = question_with_topic("And are they sold by the bag?", "spelt rolls weigh")
    follow_up = f"{prompt}\n\nQuestion: {asked}"
    assert strict.invoke(follow_up).content == words.invoke(follow_up).content != NO_ANSWER
    more = f"{prompt}\n\nQuestion: {NEAR_MISS_SPELT} Just curious."
    assert words.invoke(more).content != NO_ANSWER
    assert strict.invoke(more).content == NO_ANSWER


def test_strict_answers_do_not_look_for_the_word_that_says_what_kind_of_answer_is_asked() -> None:
    # "year" says a year is asked for; the sentence gives one without the word.
    prompt = format_sources(
        ["The Harbour Bakery opened in 1990 on Quay Street.", "Rye is baked daily."]
    )
    strict = ExtractiveChatModel(embeddings=WordLlamaEmbeddings(), word_encoder=MiniLMEmbeddings())
    question = f"{prompt}\n\nQuestion: In what year did the Harbour Bakery open?"
    assert (
        strict.invoke(question).content == "The Harbour Bakery opened in 1990 on Quay Street. [1]"
    )


def test_extractive_model_quotes_at_most_max_sentences() -> None:
    question = "What are the capitals?"
    assert ask(question) == (
        "Paris is the capital of France. [1] Berlin is the capital of Germany. [2]"
    )
    assert ask(question, ExtractiveChatModel(max_sentences=1)) == (
        "Paris is the capital of France. [1]"
    )


def test_higher_min_relevance_refuses_partial_matches() -> None:
    question = "Is Berlin the capital of France?"
    assert ask(question) != NO_ANSWER
    assert ask(question, ExtractiveChatModel(min_relevance=0.99)) == NO_ANSWER


def test_extractive_model_streams_word_chunks_that_add_up_to_the_answer() -> None:
    model = ExtractiveChatModel()
    prompt = f"{CONTEXT}\n\nQuestion: When was the Eiffel Tower completed?"
    chunks = chunks_of(model, prompt)

    assert len(chunks) > 1
    assert "".join(str(c.content) for c in chunks) == model.invoke(prompt).content
    assert chunks[0].content == "The "
    assert all(c.usage_metadata is None for c in chunks[:-1])
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].chunk_position == "last"


async def test_extractive_model_streams_async_too() -> None:
    model = ExtractiveChatModel()
    prompt = f"{CONTEXT}\n\nQuestion: What is the capital of France?"
    texts = [str(c.content) async for c in model.astream(prompt)]
    assert len(texts) > 1
    assert "".join(texts) == "Paris is the capital of France. [1]"


def test_extractive_model_reports_usage_counted_by_count_tokens() -> None:
    prompt = f"{CONTEXT}\n\nQuestion: What is the capital of France?"
    message = ExtractiveChatModel().invoke(prompt)

    assert message.usage_metadata == {
        "input_tokens": count_tokens(prompt),
        "output_tokens": count_tokens("Paris is the capital of France. [1]"),
        "total_tokens": count_tokens(prompt) + count_tokens("Paris is the capital of France. [1]"),
    }
    assert message.response_metadata["cited"] == [1]
    assert message.response_metadata["finish_reason"] == "stop"


def test_extractive_model_uses_an_injected_token_counter() -> None:
    message = ExtractiveChatModel(token_counter=len).invoke("abc")
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 3
    assert message.usage_metadata["output_tokens"] == len(NO_ANSWER)


def test_extractive_model_says_what_it_is() -> None:
    model = ExtractiveChatModel()
    assert model._llm_type == "extractive"
    assert "extractive" in (ExtractiveChatModel.__doc__ or "").lower()
    assert model._get_ls_params()["ls_model_name"] == "extractive"


def test_cited_sources_lists_each_citation_once_in_order() -> None:
    assert cited_sources(ask("What are the capitals?")) == [1, 2]
    assert cited_sources(NO_ANSWER) == []
