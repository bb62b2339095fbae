import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableLambda
from typing_extensions import is_typeddict

from weft.core.component import TypedLambda, lambda_, spec_of
from weft.core.errors import ComponentTypeError
from weft.core.types import MessagesInput


def upper(text: str) -> str:
    return text.upper()


async def aupper(text: str) -> str:
    await asyncio.sleep(0)
    return text.upper()


def split(text: str) -> Iterator[str]:
    yield from text.split()


async def asplit(text: str) -> AsyncIterator[str]:
    for word in text.split():
        yield word


def test_lambda_types_come_from_annotations() -> None:
    lam = TypedLambda(upper)
    assert (lam.input_type, lam.output_type, lam.mode) == (str, str, "sync")
    assert lam.InputType is str and lam.OutputType is str


def test_generator_lambda_streams_and_concatenates() -> None:
    lam = TypedLambda(split)
    assert lam.output_type is str and lam.streams
    assert list(lam.stream("a b c")) == ["a", "b", "c"]
    assert lam.invoke("a b c") == "abc"


async def test_async_lambdas_match_sync_results() -> None:
    assert await TypedLambda(aupper).ainvoke("x") == "X"
    assert await TypedLambda(asplit).ainvoke("a b") == "ab"
    assert [c async for c in TypedLambda(asplit).astream("a b")] == ["a", "b"]
    assert await TypedLambda(upper).ainvoke("y") == "Y"


def test_async_lambda_runs_from_sync_code() -> None:
    assert TypedLambda(aupper).invoke("z") == "Z"
    assert TypedLambda(asplit).invoke("p q") == "pq"


def test_lambda_receives_config_when_it_asks() -> None:
    def tagged(text: str, config: RunnableConfig) -> str:
        return f"{text}:{config['metadata']['who']}"

    assert TypedLambda(tagged).invoke("hi", {"metadata": {"who": "me"}}) == "hi:me"


def test_unannotated_input_is_an_error_that_says_how_to_fix_it() -> None:
    def bare(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(ComponentTypeError) as err:
        TypedLambda(bare)
    msg = str(err.value)
    assert "no type annotation for its input 'x'" in msg
    assert "input_type=" in msg and "test_component.py" in msg


def test_missing_return_annotation_is_an_error() -> None:
    def half(x: int):  # type: ignore[no-untyped-def]
        return x / 2

    with pytest.raises(ComponentTypeError, match="no return annotation"):
        TypedLambda(half)


def test_plain_lambda_needs_explicit_types() -> None:
    with pytest.raises(ComponentTypeError):
        spec_of(lambda x: x)
    spec = spec_of(lambda_(lambda x: x * 2, input_type=int, output_type=int))
    assert (spec.kind, spec.input_type, spec.output_type) == ("lambda", int, int)
    assert spec.component.invoke(4) == 8


class _Retriever(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(page_content=query)]


@pytest.mark.parametrize(
    ("component", "kind", "in_t", "out_t"),
    [
        (GenericFakeChatModel(messages=iter([])), "chat_model", MessagesInput, AIMessage),
        (_Retriever(), "retriever", str, list[Document]),
        (RunnableLambda(upper), "runnable", str, str),
    ],
)
def test_langchain_components_resolve_their_types(
    component: Any, kind: str, in_t: Any, out_t: Any
) -> None:
    spec = spec_of(component)
    assert (spec.kind, spec.input_type, spec.output_type) == (kind, in_t, out_t)


def test_prompt_template_input_is_a_typeddict_of_its_variables() -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "{context}\n\n{question}")])
    spec = spec_of(prompt)
    assert spec.kind == "prompt" and spec.output_type is PromptValue
    assert is_typeddict(spec.input_type)
    assert spec.input_type.__required_keys__ == frozenset({"context", "question"})


def test_non_component_is_rejected() -> None:
    with pytest.raises(ComponentTypeError, match="is not a component"):
        spec_of(42)


def test_wrapped_chat_models_and_prompts_keep_their_types() -> None:
    model = GenericFakeChatModel(messages=iter([]))
    for wrapped in (model.with_retry(), model.with_fallbacks([model]), model.bind(stop=["x"])):
        spec = spec_of(wrapped)
        assert (spec.kind, spec.input_type, spec.output_type) == (
            "chat_model",
            MessagesInput,
            AIMessage,
        )
    prompt = ChatPromptTemplate.from_messages([("human", "{q}")]).with_retry()
    spec = spec_of(prompt)
    assert spec.kind == "prompt" and spec.input_type.__required_keys__ == frozenset({"q"})


def test_as_component_is_a_deprecated_alias_that_says_what_to_use() -> None:
    from weft.core.component import as_component

    with pytest.warns(DeprecationWarning, match=r"weft\.lambda_\(fn, \.\.\.\)"):
        spec = as_component(len, input_type=str, output_type=int)
    assert (spec.kind, spec.input_type, spec.output_type) == ("lambda", str, int)
