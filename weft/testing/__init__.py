"""Fakes for testing weft graphs and your own: a scripted chat model (``ScriptedChatModel``) and
a local OpenAI-compatible server (``OpenAIServer``)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from weft.testing._openai_server import (
        Fault,
        OpenAIServer,
        OpenAIServerProcess,
        RecordedRequest,
        Reply,
        ToolCall,
    )
    from weft.testing._scripted import ScriptedChatModel

__all__ = [
    "Fault",
    "OpenAIServer",
    "OpenAIServerProcess",
    "RecordedRequest",
    "Reply",
    "ScriptedChatModel",
    "ToolCall",
]

# Imported on first use: `python -m weft.testing._openai_server` must find its module unimported
# (runpy warns otherwise), and `import weft.testing` should not pay for what a test never uses.
_LAZY = {name: "weft.testing._openai_server" for name in __all__}
_LAZY["ScriptedChatModel"] = "weft.testing._scripted"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'weft.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
