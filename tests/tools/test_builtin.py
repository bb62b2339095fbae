"""current_time and knowledge_base_search: zones, cited snippets, sync and async sources."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import ToolMessage
from langchain_core.retrievers import BaseRetriever

from weft.core.errors import ComponentTypeError
from weft.tools import current_time, format_citations, knowledge_base_search

BIRDS = [
    Document("Swifts can stay airborne for ten months.", metadata={"source": "swifts.md"}),
    Document("Owls turn their heads 270 degrees.", metadata={"title": "Owl facts"}),
    Document("Penguins  cannot\nfly.", id="penguin-1"),
    Document("Crows remember faces."),
]


class Aviary(BaseRetriever):
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [d for d in BIRDS if query.lower() in d.page_content.lower()]


def test_current_time_is_now_in_the_named_zone() -> None:
    out = current_time.invoke({"timezone": "Asia/Kathmandu"})
    match = re.fullmatch(r"(\S+) \((\w+day), Asia/Kathmandu\)", out)
    assert match, out
    stamp = datetime.fromisoformat(match.group(1))
    assert stamp.utcoffset() == timedelta(hours=5, minutes=45)
    assert match.group(2) == f"{stamp:%A}"
    assert abs(stamp - datetime.now(ZoneInfo("UTC"))) < timedelta(minutes=5)
    assert current_time.invoke({}).endswith(", UTC)")


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../etc/passwd", ""])
def test_an_unknown_time_zone_is_refused_with_examples(zone: str) -> None:
    with pytest.raises(ValueError, match=r"unknown time zone .*use an IANA name such as"):
        current_time.invoke({"timezone": zone})


def test_citations_number_the_snippets_with_their_sources() -> None:
    assert format_citations(BIRDS) == (
        "[1] Swifts can stay airborne for ten months. (swifts.md)\n\n"
        "[2] Owls turn their heads 270 degrees. (Owl facts)\n\n"
        "[3] Penguins cannot fly. (penguin-1)\n\n"
        "[4] Crows remember faces."
    )
    long = Document("word " * 50, metadata={"source": "w"})
    assert format_citations([long], max_chars=22) == "[1] word word word word … (w)"


async def test_search_over_a_retriever_returns_snippets_and_documents() -> None:
    search = knowledge_base_search(Aviary(), description="Search bird notes.")
    assert search.name == "knowledge_base_search"
    assert search.description == "Search bird notes."
    assert search.invoke({"query": "owls"}) == "[1] Owls turn their heads 270 degrees. (Owl facts)"
    call = {"name": search.name, "args": {"query": "ow"}, "id": "c1", "type": "tool_call"}
    message = await search.ainvoke(call)
    assert isinstance(message, ToolMessage)
    assert message.artifact == [BIRDS[1], BIRDS[3]]
    assert str(message.content).startswith("[1] Owls")


async def test_search_keeps_k_and_reports_nothing_found() -> None:
    search = knowledge_base_search(Aviary(), k=1)
    assert search.invoke({"query": "s"}).count("[") == 1
    assert search.invoke({"query": "dodo"}) == "no documents found for 'dodo'; try other words"


async def test_search_takes_sync_and_async_functions() -> None:
    async def lookup(query: str) -> list[Document]:
        await asyncio.sleep(0)
        return BIRDS[:1]

    search = knowledge_base_search(lookup)
    assert (await search.ainvoke({"query": "q"})).startswith("[1] Swifts")
    assert (await asyncio.to_thread(search.invoke, {"query": "q"})).startswith("[1] Swifts")
    assert knowledge_base_search(lambda q: BIRDS[3:]).invoke({"query": "q"}) == (
        "[1] Crows remember faces."
    )


def test_search_settings_are_checked() -> None:
    with pytest.raises(ComponentTypeError, match="k must be at least 1"):
        knowledge_base_search(Aviary(), k=0)
    with pytest.raises(ComponentTypeError, match="takes a retriever or a function"):
        knowledge_base_search("birds.db")  # type: ignore[arg-type]
