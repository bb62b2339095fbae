"""``extract_structured``: text in, a validated pydantic model out.

With a chat model, the model is asked for the schema through ``with_structured_output``; an
answer that fails validation is sent back to the model with the validation error, up to
``max_retries`` more times. When every try fails (or the model call itself fails) and a
``rules`` function is given, the rules answer instead; without one it is a
:class:`~weft.core.errors.ModelError` naming the schema and the last error. Offline (no model),
the rules answer alone.

Example:
    >>> from pydantic import BaseModel
    >>> class City(BaseModel):
    ...     name: str
    >>> extract = extract_structured(City, rules=lambda text: City(name=text.split()[-1]))
    >>> extract.invoke("I live in Lyon")
    City(name='Lyon')
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import pydantic
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from weft.core.component import TypedLambda, lambda_
from weft.core.errors import ConfigurationError, ModelError

__all__ = ["DEFAULT_INSTRUCTIONS", "extract_structured"]

M = TypeVar("M", bound=pydantic.BaseModel)

DEFAULT_INSTRUCTIONS = (
    "Extract the fields of {schema} from the user's text. Use only what the text says; leave a "
    "field empty when the text does not give it."
)
"""The system message sent with the text; ``{schema}`` is the schema's class name."""

_log = logging.getLogger(__name__)


class _Failed(Exception):
    """One try's answer did not validate; ``raw`` is what the model said."""

    def __init__(self, error: str, raw: str) -> None:
        super().__init__(error)
        self.raw = raw


def _raw_text(raw: Any) -> str:
    if isinstance(raw, AIMessage):
        if raw.tool_calls:
            return json.dumps(raw.tool_calls[0]["args"], ensure_ascii=False)
        return raw.content if isinstance(raw.content, str) else json.dumps(raw.content)
    return str(raw)


def _parse(schema: type[M], answer: Any) -> M:
    """The schema's instance in one structured-output answer, or :class:`_Failed`."""
    if isinstance(answer, schema):
        return answer
    if not isinstance(answer, dict) or "raw" not in answer:
        try:
            return schema.model_validate(answer)
        except pydantic.ValidationError as exc:
            raise _Failed(str(exc), json.dumps(answer, default=str)) from exc
    raw = answer["raw"]
    parsed = answer.get("parsed")
    if isinstance(parsed, schema):
        return parsed
    text = _raw_text(raw)
    error = answer.get("parsing_error")
    if error is None and isinstance(raw, AIMessage) and not raw.tool_calls:
        # A model without tool calls may still answer with the JSON in its text.
        try:
            return schema.model_validate_json(text)
        except pydantic.ValidationError as exc:
            error = exc
    if error is None:
        error = f"the answer held no {schema.__name__} (no tool call and no JSON)"
    raise _Failed(str(error), text)


def _ask_model(
    schema: type[M],
    model: BaseChatModel,
    text: str,
    instructions: str,
    max_retries: int,
    config: RunnableConfig | None,
) -> M:
    structured = model.with_structured_output(schema, include_raw=True)
    messages: list[BaseMessage] = [
        SystemMessage(instructions.format(schema=schema.__name__)),
        HumanMessage(text),
    ]
    last = ""
    for attempt in range(max_retries + 1):
        try:
            return _parse(schema, structured.invoke(messages, config))
        except _Failed as failed:
            last = str(failed)
            _log.info(
                "extract_structured(%s): try %d of %d did not validate",
                schema.__name__,
                attempt + 1,
                max_retries + 1,
            )
            messages = [
                *messages,
                AIMessage(failed.raw),
                HumanMessage(
                    f"That answer is not a valid {schema.__name__}: {last}\n"
                    "Answer again with every field fixed."
                ),
            ]
    raise ModelError(
        f"extract_structured({schema.__name__}): the model's answer failed validation "
        f"{max_retries + 1} times; last error: {' '.join(last.split())}. Give a rules function "
        "to fall back on, raise max_retries, or use a model that follows the schema"
    )


def extract_structured(
    schema: type[M],
    *,
    model: BaseChatModel | None = None,
    rules: Callable[[str], M] | None = None,
    max_retries: int = 2,
    instructions: str = DEFAULT_INSTRUCTIONS,
    name: str | None = None,
) -> TypedLambda:
    """A ``str -> schema`` component that extracts ``schema`` from text.

    Args:
        schema: the pydantic model to fill.
        model: a chat model that supports ``with_structured_output``; None works offline.
        rules: ``text -> schema``, used offline and when the model fails.
        max_retries: how many more times the model is asked after an invalid answer, each time
            with the validation error.
        instructions: the system message (``{schema}`` becomes the schema's name).
        name: the component's name (``extract_<schema>`` by default).

    Raises:
        ConfigurationError: neither ``model`` nor ``rules`` is given, or ``max_retries`` < 0.
        ModelError: (when run) the model failed every try and there are no rules.
    """
    if model is None and rules is None:
        raise ConfigurationError(
            f"extract_structured({schema.__name__}) has neither a model nor rules; pass "
            "model=<a chat model> or rules=<a function from text to the schema>"
        )
    if max_retries < 0:
        raise ConfigurationError(f"max_retries is {max_retries}; it must be 0 or more")

    def extract(text: str, config: RunnableConfig) -> Any:
        if model is not None:
            try:
                return _ask_model(schema, model, text, instructions, max_retries, config)
            except Exception as exc:
                if rules is None:
                    raise
                _log.warning(
                    "extract_structured(%s): the model failed (%s: %s); using the rules",
                    schema.__name__,
                    type(exc).__name__,
                    exc,
                )
        assert rules is not None
        result = rules(text)
        if not isinstance(result, schema):
            raise ConfigurationError(
                f"the rules of extract_structured({schema.__name__}) returned a "
                f"{type(result).__name__}; they must return a {schema.__name__}"
            )
        return result

    return lambda_(
        extract,
        input_type=str,
        output_type=schema,
        name=name or f"extract_{schema.__name__.lower()}",
    )
