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
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI

from weft.components._context import (
    Source,
    cited_sources,
    format_sources,
    parse_sources,
    question_with_topic,
)
from weft.components._extractive import NO_ANSWER, ExtractiveChatModel, WordEncoder
from weft.components._extractive import _sentences as _sentences
from weft.components._extractive import _terms as _terms
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
    "WordEncoder",
    "cited_sources",
    "default_chat_model",
    "format_sources",
    "openai_chat_model",
    "parse_sources",
    "question_with_topic",
]

DEFAULT_MODEL = "gpt-4o-mini"
"""The model :func:`openai_chat_model` uses when neither ``model=`` nor ``WEFT_MODEL`` is set."""

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
