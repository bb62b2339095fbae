"""``classify``: text -> one of a fixed set of labels, with a score and the reasons.

Offline the caller's ``rules`` decide; with a chat model the model decides through structured
output (``with_structured_output``), told the labels and asked for a score and short reasons.
With both, the model decides and the rules answer when the model fails or picks a label outside
the set, so a classification never stops on a provider error.

Example:
    >>> def by_keyword(text: str) -> Classification:
    ...     urgent = "now" in text.lower()
    ...     return Classification(label="urgent" if urgent else "later", score=1.0,
    ...                           reasons=["says 'now'"] if urgent else [])
    >>> chain = classify(["urgent", "later"], rules=by_keyword)
    >>> chain.invoke("Call me now").label
    'urgent'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, create_model

from weft.core.chain import Chain
from weft.core.compiled import CompiledGraph
from weft.core.errors import ConfigurationError, ModelError

__all__ = ["Classification", "ClassificationError", "classify"]


class Classification(BaseModel):
    """One label of the set, how sure the classifier is (0 to 1), and why."""

    model_config = ConfigDict(frozen=True)

    label: str
    score: float = Field(ge=0.0, le=1.0)
    reasons: list[str] = Field(default_factory=list)


class ClassificationError(ModelError):
    """The classifier answered a label outside the set, or the model gave no usable answer."""


_SYSTEM = (
    "Classify the user's text into exactly one of these labels: {labels}. "
    "Answer with the label, a score between 0 and 1 for how sure you are, and one to three "
    "short reasons quoting the words of the text that decided it."
)


def _checked_labels(labels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(labels, str):
        raise ConfigurationError(
            f"classify: labels is the string {labels!r}; pass a list of labels, e.g. [{labels!r}]"
        )
    found = tuple(labels)
    if len(found) < 2:
        raise ConfigurationError(f"classify: got {len(found)} label(s); pass at least two")
    bad = [label for label in found if not isinstance(label, str) or not label.strip()]
    if bad:
        raise ConfigurationError(f"classify: labels must be non-empty strings, got {bad!r}")
    twice = sorted({label for label in found if found.count(label) > 1})
    if twice:
        raise ConfigurationError(f"classify: labels {twice} are given twice; list each once")
    return found


def _in_set(result: Any, labels: tuple[str, ...], who: str) -> Classification:
    if not isinstance(result, Classification):
        raise ClassificationError(
            f"classify: {who} returned a {type(result).__name__}; it must return a Classification"
        )
    if result.label not in labels:
        raise ClassificationError(
            f"classify: {who} answered the label {result.label!r}, which is not one of "
            f"{', '.join(labels)}; make it answer one of them"
        )
    return result


def _structured(model: BaseChatModel, labels: tuple[str, ...]) -> Callable[[str], Classification]:
    schema: type[BaseModel] = create_model(
        "Classification",
        label=(Literal[labels], Field(description="one of the labels")),  # type: ignore[arg-type]
        score=(float, Field(ge=0.0, le=1.0, description="how sure, 0 to 1")),
        reasons=(list[str], Field(description="short reasons")),
    )
    structured = model.with_structured_output(schema)
    system = SystemMessage(_SYSTEM.format(labels=", ".join(labels)))

    def ask(text: str) -> Classification:
        try:
            answer = structured.invoke([system, HumanMessage(text)])
        except Exception as exc:
            raise ClassificationError(
                f"classify: the model failed: {type(exc).__name__}: {exc}; check the model, or "
                f"pass rules= to answer offline when it fails"
            ) from exc
        if answer is None:
            raise ClassificationError(
                "classify: the model gave no structured answer; use a model that supports "
                "tool calling or structured output, or pass rules="
            )
        data = answer.model_dump() if isinstance(answer, BaseModel) else answer
        return _in_set(Classification.model_validate(data), labels, "the model")

    return ask


def classify(
    labels: Sequence[str],
    *,
    model: BaseChatModel | None = None,
    rules: Callable[[str], Classification] | None = None,
    name: str = "classify",
) -> CompiledGraph[str, Classification]:
    """A chain that classifies text into one of ``labels``.

    Args:
        labels: The labels, at least two, each once.
        model: A chat model that supports structured output; it decides when given.
        rules: An offline classifier; it decides without a model, and answers when the model
            fails.
        name: The chain's name, as traces show it.

    Raises:
        ConfigurationError: the labels are not two or more distinct strings, or neither
            ``model`` nor ``rules`` is given.

    The compiled chain raises :class:`ClassificationError` when the one classifier it has
    answers outside the labels (or the model fails and there are no rules).
    """
    found = _checked_labels(labels)
    if model is None and rules is None:
        raise ConfigurationError(
            "classify: pass rules= (a function text -> Classification) to classify offline, "
            "or model= (a chat model with structured output), or both"
        )
    ask = _structured(model, found) if model is not None else None

    def run(text: str) -> Classification:
        if ask is None:
            assert rules is not None
            return _in_set(rules(text), found, "the rules")
        try:
            return ask(text)
        except ClassificationError as exc:
            if rules is None:
                raise
            fallback = _in_set(rules(text), found, "the rules")
            reasons = [*fallback.reasons, f"rules answered: {exc}"]
            return fallback.model_copy(update={"reasons": reasons})

    chain = Chain[str, Classification](name).then(
        run, name="classify", input_type=str, output_type=Classification
    )
    return chain.compile()
