"""What ``weft agent`` and the server's agent route share: the configured tool-calling model,
the ready tools by short name, and the refusal when no model is configured."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from weft.core.errors import ConfigurationError
from weft.graphs._model import model_configured

__all__ = ["NO_MODEL", "TOOL_NAMES", "agent_model", "agent_tools", "parse_tool_names"]

NO_MODEL = (
    "the agent needs a tool-calling model and none is configured; set OPENAI_API_KEY "
    "(and optionally WEFT_MODEL) to use OpenAI, or OPENAI_BASE_URL to an OpenAI-compatible "
    "server"
)
"""The one line both the CLI and the server give when no model is configured."""

TOOL_NAMES = {"kb": "knowledge_base_search", "calculator": "calculator", "time": "current_time"}
"""The ready tools by the short names ``--tools`` takes, and the names the model sees."""


def agent_model() -> BaseChatModel:
    """The OpenAI(-compatible) model the environment configures.

    Raises:
        ConfigurationError: neither ``OPENAI_API_KEY`` nor ``OPENAI_BASE_URL`` is set.
    """
    if not model_configured():
        raise ConfigurationError(NO_MODEL)
    from weft.components.models import openai_chat_model

    return openai_chat_model()


def parse_tool_names(names: str | Sequence[str]) -> list[str]:
    """The short tool names in ``names`` (a comma-separated string or a list), checked.

    Raises:
        ConfigurationError: a name is unknown; the message lists the valid ones.
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    picked = [n.strip() for n in items if n.strip()]
    unknown = [n for n in picked if n not in TOOL_NAMES]
    if unknown or not picked:
        raise ConfigurationError(
            f"unknown tools {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(TOOL_NAMES)}, comma-separated, e.g. kb,calculator"
            if unknown
            else f"no tools given; choose from {', '.join(TOOL_NAMES)}, e.g. kb,calculator"
        )
    return list(dict.fromkeys(picked))


def agent_tools(names: Sequence[str], settings: Any = None) -> list[BaseTool]:
    """The ready tools for the short ``names``; ``kb`` searches the settings' knowledge base."""
    from weft.tools import calculator, current_time, knowledge_base_search

    tools: list[BaseTool] = []
    for name in names:
        if name == "kb":
            from weft.graphs.registry import knowledge_base

            kb = knowledge_base(settings)
            tools.append(
                knowledge_base_search(
                    kb.hybrid_retriever(),
                    description="Search the knowledge base of ingested documents; returns "
                    "numbered snippets with their sources.",
                )
            )
        elif name == "calculator":
            tools.append(calculator)
        else:
            tools.append(current_time)
    return tools
