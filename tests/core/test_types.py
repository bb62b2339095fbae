from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Optional, TypeVar, Union

import pytest
from pydantic import BaseModel
from typing_extensions import NotRequired, TypedDict

from weft.core.types import (
    AIMessage,
    BaseMessage,
    Document,
    HumanMessage,
    MessagesInput,
    is_assignable,
    missing_typeddict_keys,
    type_name,
)

T = TypeVar("T")


class Base(BaseModel):
    a: int


class Child(Base):
    b: str


class QA(TypedDict):
    question: str
    context: str


class Q(TypedDict):
    question: str


class QOpt(TypedDict):
    question: str
    lang: NotRequired[str]


ASSIGNABLE = [
    (str, str),
    (int, float | int),
    (list[Document], list[Document]),
    (list[Document], Sequence[Document]),
    (list[Document], Optional[list[Document]]),
    (None, Optional[str]),
    (list[AIMessage], list[BaseMessage]),
    (list[HumanMessage], MessagesInput),
    (str, MessagesInput),
    (Child, Base),
    (QA, Q),
    (QA, dict[str, Any]),
    (dict[str, Any], Q),
    (Q, QOpt),
    (dict[str, int], Mapping[str, int]),
    (Literal["a", "b"], str),
    (Literal["a"], Literal["a", "b"]),
    (Union[int, str], Union[str, int, None]),
    (Annotated[str, "meta"], str),
    (Any, list[int]),
    (list[int], Any),
    (T, int),
    (tuple[int, int], tuple[int, ...]),
    (tuple[int, str], Sequence[int | str]),
    (list, list[int]),
    (str, Sequence[str]),
]

NOT_ASSIGNABLE = [
    (int, str),
    (list[Document], list[BaseMessage]),
    (list[Document], MessagesInput),
    (Optional[str], str),
    (Base, Child),
    (Q, QA),
    (dict[str, int], dict[str, str]),
    (Literal["c"], Literal["a", "b"]),
    (str, Literal["a"]),
    (Union[int, str], int),
    (list[int], dict[str, int]),
    (tuple[int, ...], tuple[int, int]),
    (AIMessage, str),
]


@pytest.mark.parametrize(("src", "dst"), ASSIGNABLE, ids=lambda t: type_name(t))
def test_assignable_pairs(src: Any, dst: Any) -> None:
    assert is_assignable(src, dst)


@pytest.mark.parametrize(("src", "dst"), NOT_ASSIGNABLE, ids=lambda t: type_name(t))
def test_not_assignable_pairs(src: Any, dst: Any) -> None:
    assert not is_assignable(src, dst)


def test_missing_typeddict_keys_names_the_missing_keys() -> None:
    assert missing_typeddict_keys(Q, QA) == ["context"]
    assert missing_typeddict_keys(QA, Q) == []


@pytest.mark.parametrize(
    ("tp", "name"),
    [
        (list[Document], "list[Document]"),
        (Optional[list[Document]], "list[Document] | None"),
        (dict[str, int], "dict[str, int]"),
        (Literal["a"], "Literal['a']"),
        (Any, "Any"),
        (tuple[int, ...], "tuple[int, ...]"),
    ],
)
def test_type_name_is_readable(tp: Any, name: str) -> None:
    assert type_name(tp) == name
