"""The scripted OpenAI-compatible server speaks OpenAI's wire format and injects faults."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest

import weft.testing
from weft.core.errors import MissingExtraError
from weft.testing import (
    Fault,
    OpenAIServer,
    OpenAIServerProcess,
    RecordedRequest,
    Reply,
    ToolCall,
)

pytestmark = pytest.mark.server

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def shared() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def server(shared: OpenAIServer) -> OpenAIServer:
    shared.reset()
    return shared


def chat(server: OpenAIServer, **body: Any) -> httpx.Response:
    payload = {"model": "gpt-4o-mini", "messages": MESSAGES, **body}
    return httpx.post(f"{server.base_url}/chat/completions", json=payload, timeout=5)


def sse_data(response: httpx.Response) -> list[str]:
    return [line[len("data: ") :] for line in response.text.split("\n\n") if line]


@contextmanager
def client(server: OpenAIServer, **kwargs: Any) -> Iterator[openai.OpenAI]:
    kwargs.setdefault("max_retries", 0)
    # Closed explicitly: a client left to the garbage collector leaks its socket (ResourceWarning).
    with openai.OpenAI(base_url=server.base_url, api_key="test", **kwargs) as sdk:
        yield sdk


@pytest.fixture
def sdk(server: OpenAIServer) -> Iterator[openai.OpenAI]:
    with client(server) as sdk:
        yield sdk


# -- chat completions --------------------------------------------------------------------------


def test_non_streaming_reply_has_openai_shape_and_usage(server: OpenAIServer) -> None:
    server.script("Paris is the capital.")
    body = chat(server).json()

    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-mini"
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Paris is the capital.",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == 5  # Paris, is, the, capital, "."
    assert usage["prompt_tokens"] == 7
    assert usage["total_tokens"] == 12


def test_streaming_sends_role_then_words_then_finish_then_done(server: OpenAIServer) -> None:
    server.script("Paris is the capital.")
    response = chat(server, stream=True)

    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_data(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant"
    words = [d["content"] for d in deltas[1:-1]]
    assert words == ["Paris ", "is ", "the ", "capital."]
    assert deltas[-1] == {}
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 5 + ["stop"]
    assert all("usage" not in c for c in chunks)


def test_streaming_usage_comes_last_with_empty_choices_when_asked(server: OpenAIServer) -> None:
    server.script("Paris is the capital.")
    events = sse_data(chat(server, stream=True, stream_options={"include_usage": True}))

    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_tool_calls_without_streaming(server: OpenAIServer, sdk: openai.OpenAI) -> None:
    server.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_x")]))
    answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]

    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.id == "call_x"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]


def test_tool_call_arguments_stream_in_pieces_that_join_to_json(
    server: OpenAIServer, sdk: openai.OpenAI
) -> None:
    args = {"city": "Paris", "unit": "celsius", "days": 3}
    server.script(Reply(tool_calls=[ToolCall("forecast", args), ToolCall("now", {})]))
    stream = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )

    names: dict[int, str] = {}
    pieces: dict[int, list[str]] = {}
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for call in choice.delta.tool_calls or []:
            if call.function and call.function.name:
                names[call.index] = call.function.name
            if call.function and call.function.arguments:
                pieces.setdefault(call.index, []).append(call.function.arguments)

    assert names == {0: "forecast", 1: "now"}
    assert len(pieces[0]) > 1
    assert json.loads("".join(pieces[0])) == args
    assert json.loads("".join(pieces[1])) == {}
    assert finish == "tool_calls"


def test_replies_are_used_in_order_then_the_default_echoes(server: OpenAIServer) -> None:
    server.script("first", Reply("second"))
    texts = [chat(server).json()["choices"][0]["message"]["content"] for _ in range(3)]

    assert texts == ["first", "second", "echo: What is the capital of France?"]
    assert server.pending == 0


def test_callable_reply_gets_the_recorded_request(server: OpenAIServer) -> None:
    def reply(request: RecordedRequest) -> str:
        return f"{request.model} got {len(request.messages)} message(s)"

    server.script(reply)
    assert chat(server).json()["choices"][0]["message"]["content"] == "gpt-4o-mini got 1 message(s)"


def test_a_callable_that_raises_is_a_500_the_client_must_not_retry(server: OpenAIServer) -> None:
    server.script(lambda request: 1 / 0)
    response = chat(server)

    assert response.status_code == 500
    assert response.headers["x-should-retry"] == "false"
    assert "ZeroDivisionError" in response.json()["error"]["message"]


def test_requests_are_recorded_with_headers_and_body(
    server: OpenAIServer, sdk: openai.OpenAI
) -> None:
    sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        temperature=0.5,
    )

    [request] = server.requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test"
    assert request.body["temperature"] == 0.5
    assert request.messages == MESSAGES
    assert server.requests_to("/chat/completions") == [request]


def test_async_client_works_too(server: OpenAIServer) -> None:
    import asyncio

    async def main() -> str | None:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="t") as aclient:
            answer = await aclient.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
            return answer.choices[0].message.content

    server.script("async hello")
    assert asyncio.run(main()) == "async hello"


# -- faults ------------------------------------------------------------------------------------


def test_rate_limit_fault_is_a_429_with_retry_after(server: OpenAIServer) -> None:
    server.script(Fault.rate_limit(retry_after=2))
    response = chat(server)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_fractional_retry_after_is_sent_as_is(server: OpenAIServer) -> None:
    server.script(Fault.server_error(503, retry_after=0.25))
    response = chat(server)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "0.25"


@pytest.mark.parametrize(
    ("fault", "status", "error_type", "code"),
    [
        (Fault.server_error(), 500, "server_error", None),
        (Fault.unauthorized(), 401, "invalid_request_error", "invalid_api_key"),
        (
            Fault.bad_request("Bad temperature.", "bad_temp"),
            400,
            "invalid_request_error",
            "bad_temp",
        ),
        (Fault.unknown_model(), 404, "invalid_request_error", "model_not_found"),
    ],
)
def test_status_faults_answer_with_openai_error_json(
    server: OpenAIServer, fault: Fault, status: int, error_type: str, code: str | None
) -> None:
    server.script(fault)
    response = chat(server)

    assert response.status_code == status
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (error_type, code, None)
    assert error["message"]
    assert "retry-after" not in response.headers


def test_unknown_model_message_names_the_model(server: OpenAIServer) -> None:
    server.script(Fault.unknown_model())
    error = chat(server).json()["error"]
    assert (
        error["message"]
        == "The model `gpt-4o-mini` does not exist or you do not have access to it."
    )


def test_sdk_raises_its_own_error_class_for_each_status(
    server: OpenAIServer, sdk: openai.OpenAI
) -> None:
    server.script(Fault.unauthorized(), Fault.bad_request(), Fault.unknown_model())
    for expected in (openai.AuthenticationError, openai.BadRequestError, openai.NotFoundError):
        with pytest.raises(expected):
            sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]


def test_slow_first_byte_trips_a_client_timeout(server: OpenAIServer) -> None:
    server.script(Reply("late", delay=0.5))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": MESSAGES},
            timeout=httpx.Timeout(5, read=0.1),
        )


def test_slow_first_byte_still_answers_a_patient_client(server: OpenAIServer) -> None:
    server.script(Reply("late", delay=0.2))
    assert chat(server).json()["choices"][0]["message"]["content"] == "late"


def test_a_hang_sends_nothing_until_the_client_gives_up(server: OpenAIServer) -> None:
    server.script(Fault.hang(), "after the hang")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": MESSAGES, "stream": True},
            timeout=httpx.Timeout(5, read=0.2),
        )
    assert chat(server).json()["choices"][0]["message"]["content"] == "after the hang"


def test_a_hang_that_ends_is_a_504(server: OpenAIServer) -> None:
    server.script(Fault.hang(seconds=0.1))
    response = chat(server)
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "server_error"


def test_drop_after_one_event_cuts_a_stream_before_its_content(server: OpenAIServer) -> None:
    server.script(Reply("never shown", fault=Fault.drop(after_chunks=1)))
    payload = {"model": "m", "messages": MESSAGES, "stream": True}
    received: list[dict[str, Any]] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", f"{server.base_url}/chat/completions", json=payload) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(json.loads(line.removeprefix("data: ")))
    assert [c["choices"][0]["delta"] for c in received] == [
        {"role": "assistant", "content": "", "refusal": None}
    ]


def test_drop_closes_the_stream_after_the_given_number_of_events(server: OpenAIServer) -> None:
    server.script(Reply("one two three four", fault=Fault.drop(after_chunks=3)))
    received: list[bytes] = []
    payload = {"model": "m", "messages": MESSAGES, "stream": True}
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", f"{server.base_url}/chat/completions", json=payload) as response,
    ):
        for event in response.iter_lines():
            if event:
                received.append(event.encode())

    assert len(received) == 3
    assert not any(b"[DONE]" in e for e in received)


def test_drop_without_streaming_cuts_the_body(server: OpenAIServer) -> None:
    server.script(Fault.drop())
    with pytest.raises(httpx.RemoteProtocolError):
        chat(server)


def test_sdk_sees_a_dropped_stream_as_a_connection_error(
    server: OpenAIServer, sdk: openai.OpenAI
) -> None:
    server.script(Fault.drop(after_chunks=2))
    stream = sdk.chat.completions.create(
        model="m",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )
    with pytest.raises(openai.APIConnectionError):
        list(stream)


def test_malformed_fault_sends_one_chunk_that_is_not_json(server: OpenAIServer) -> None:
    server.script(Reply("one two", fault=Fault.malformed(after_chunks=2)))
    events = sse_data(chat(server, stream=True))

    def parses(event: str) -> bool:
        try:
            json.loads(event)
        except json.JSONDecodeError:
            return False
        return True

    assert [parses(e) for e in events[:-1]] == [True, True, False, True, True]
    assert events[-1] == "[DONE]"


def test_malformed_fault_without_streaming_sends_broken_json(server: OpenAIServer) -> None:
    server.script(Fault.malformed())
    response = chat(server)
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


# -- configuration -----------------------------------------------------------------------------


def test_configured_models_are_listed_and_others_are_unknown() -> None:
    with OpenAIServer(models=["model-a", "model-b"]) as server:
        listed = httpx.get(f"{server.base_url}/models").json()
        assert [m["id"] for m in listed["data"]] == ["model-a", "model-b"]
        assert httpx.get(f"{server.base_url}/models/model-a").json()["id"] == "model-a"
        assert httpx.get(f"{server.base_url}/models/model-z").status_code == 404

        response = chat(server)  # asks for gpt-4o-mini
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"
        assert server.pending == 0


def test_default_model_list(server: OpenAIServer, sdk: openai.OpenAI) -> None:
    ids = [m.id for m in sdk.models.list()]
    assert ids == ["gpt-4o-mini", "text-embedding-3-small"]


def test_api_key_is_checked_when_configured() -> None:
    with OpenAIServer(["hi"], api_key="sk-right") as server:
        with (
            openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0) as wrong,
            pytest.raises(openai.AuthenticationError),
        ):
            wrong.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        with openai.OpenAI(base_url=server.base_url, api_key="sk-right", max_retries=0) as right:
            answer = right.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == "hi"


def test_missing_model_is_a_400(server: OpenAIServer) -> None:
    response = httpx.post(f"{server.base_url}/chat/completions", json={"messages": MESSAGES})
    assert response.status_code == 400
    assert "model" in response.json()["error"]["message"]


def test_stop_frees_the_port_and_can_be_called_twice() -> None:
    server = OpenAIServer().start()
    url = server.base_url
    server.stop()
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models")


# -- embeddings --------------------------------------------------------------------------------


def test_embeddings_are_deterministic_unit_vectors_with_usage(
    server: OpenAIServer, sdk: openai.OpenAI
) -> None:
    first = sdk.embeddings.create(model="text-embedding-3-small", input=["red apple", "blue sky"])
    again = sdk.embeddings.create(model="text-embedding-3-small", input="red apple")

    vectors = [d.embedding for d in first.data]
    assert len(vectors[0]) == 64
    assert vectors[0] == again.data[0].embedding
    assert vectors[0] != vectors[1]
    assert math.isclose(sum(v * v for v in vectors[0]), 1.0, rel_tol=1e-5)
    assert first.usage.prompt_tokens == 4
    # The SDK asks for base64 unless told otherwise; floats must decode to the same vector.
    assert server.requests[0].body["encoding_format"] == "base64"
    floats = sdk.embeddings.create(model="e", input="red apple", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(vectors[0], rel=1e-6)


def test_embeddings_of_shared_words_are_closer(server: OpenAIServer, sdk: openai.OpenAI) -> None:
    texts = ["the red apple pie", "a red apple tart", "quantum field theory"]
    a, b, c = (d.embedding for d in sdk.embeddings.create(model="e", input=texts).data)

    def cosine(x: list[float], y: list[float]) -> float:
        return sum(p * q for p, q in zip(x, y, strict=True))

    assert cosine(a, b) > cosine(a, c)


def test_embeddings_accept_token_ids_and_dimensions(
    server: OpenAIServer, sdk: openai.OpenAI
) -> None:
    answer = sdk.embeddings.create(model="e", input=[[1, 2, 3], [4]], dimensions=8)
    assert [len(d.embedding) for d in answer.data] == [8, 8]
    assert answer.usage.total_tokens == 4


def test_embedding_faults_are_used_once_each(server: OpenAIServer) -> None:
    server.fail_embeddings(Fault.rate_limit(retry_after=0.01))
    with client(server, max_retries=1) as sdk:
        answer = sdk.embeddings.create(model="e", input="x")

    assert len(answer.data) == 1
    assert [r.path for r in server.requests] == ["/v1/embeddings", "/v1/embeddings"]


def test_empty_embedding_input_is_a_400(server: OpenAIServer) -> None:
    response = httpx.post(f"{server.base_url}/embeddings", json={"model": "e", "input": []})
    assert response.status_code == 400


# -- records, packaging, subprocess --------------------------------------------------------------


def test_replies_and_faults_survive_a_json_round_trip() -> None:
    reply = Reply(
        "text",
        tool_calls=[ToolCall("f", {"a": [1, 2]}, id="c1")],
        delay=0.5,
        fault=Fault.drop(after_chunks=4),
        finish_reason="length",
    )
    restored = Reply.from_dict(json.loads(json.dumps(reply.to_dict())))
    assert restored.to_dict() == reply.to_dict()
    assert restored.fault == reply.fault
    hang = Fault.hang(seconds=2.5)
    assert Fault.from_dict(json.loads(json.dumps(hang.to_dict()))) == hang


def test_every_exported_name_resolves() -> None:
    for name in weft.testing.__all__:
        assert getattr(weft.testing, name) is not None
    with pytest.raises(AttributeError):
        weft.testing.NotAThing  # type: ignore[attr-defined]  # noqa: B018


def test_missing_server_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(MissingExtraError, match=r'pip install "weft\[server\]"'):
        OpenAIServer().start()


def test_subprocess_server_is_scripted_over_http() -> None:
    with OpenAIServerProcess(models=["gpt-4o-mini"]) as server:
        server.script("from the child", Fault.unauthorized())
        with openai.OpenAI(base_url=server.base_url, api_key="t", max_retries=0) as sdk:
            answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
            with pytest.raises(openai.AuthenticationError):
                sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        requests = server.requests

    assert answer.choices[0].message.content == "from the child"
    assert [r.model for r in requests] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert requests[0].messages == MESSAGES
