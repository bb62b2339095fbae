"""LangChain's standard tool suites, run against weft's built-in tools."""

from __future__ import annotations

from typing import Any

from langchain_core.documents import Document
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

from weft.tools import calculator, current_time, knowledge_base_search

PLANTS = [
    Document("Ferns reproduce with spores, not seeds.", metadata={"source": "ferns.md"}),
    Document("Cacti store water in their stems.", metadata={"source": "cacti.md"}),
]


def shelf(query: str) -> list[Document]:
    words = set(query.lower().split())
    return [d for d in PLANTS if words & set(d.page_content.lower().split())]


class CalculatorCase:
    @property
    def tool_constructor(self) -> BaseTool:
        return calculator

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"expression": "2 * (3 + 4)"}


class CurrentTimeCase:
    @property
    def tool_constructor(self) -> BaseTool:
        return current_time

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"timezone": "America/Sao_Paulo"}


class SearchCase:
    @property
    def tool_constructor(self) -> BaseTool:
        return knowledge_base_search(shelf, description="Search notes about plants.")

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"query": "water stems"}


class TestCalculatorUnit(CalculatorCase, ToolsUnitTests):
    pass


class TestCalculatorIntegration(CalculatorCase, ToolsIntegrationTests):
    pass


class TestCurrentTimeUnit(CurrentTimeCase, ToolsUnitTests):
    pass


class TestCurrentTimeIntegration(CurrentTimeCase, ToolsIntegrationTests):
    pass


class TestKnowledgeBaseSearchUnit(SearchCase, ToolsUnitTests):
    pass


class TestKnowledgeBaseSearchIntegration(SearchCase, ToolsIntegrationTests):
    pass
