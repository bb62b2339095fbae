"""The compiled graph; it lives in :mod:`weft.core.runtime`, and is imported from here too."""

from weft.core.runtime.compiled import CompiledGraph, Interrupted, thread

__all__ = ["CompiledGraph", "Interrupted", "thread"]
