"""The ready graphs by name, built lazily and cached per settings: what the server exposes.

=========  ==========================================  =================================
name       what it is                                  input -> output
=========  ==========================================  =================================
``rag``    the RAG chat graph, SQLite memory per       ``ChatInput -> ChatOutput``
           ``session_id`` (:mod:`weft.graphs.rag`)
``hybrid`` vector + BM25 retrieval, fused              ``str -> list[Document]``
           (:mod:`weft.graphs.hybrid`)
``demo``   the small offline demo graph                ``str -> AIMessage``
           (:mod:`weft.graphs.demo`)
``resume`` resume analysis, matched against the job    ``ResumeInput -> ResumeAnalysis``
           ads in ``DATA_DIR/jobs`` if there
           (:mod:`weft.graphs.resume`)
``health`` red-flag triage, then a consultation saga   ``HealthInput -> Consultation``
           (:mod:`weft.graphs.health.graph`)
=========  ==========================================  =================================

The ``rag`` graph's chat model is :func:`~weft.components.resilience.served_chat_model`: a remote
model behind the ``WEFT_MODEL_*`` timeout, retries, breaker and fallback, or the offline one.
The ``resume`` and ``health`` graphs use the model the environment configures
(:func:`weft.graphs._model.configured_model`) and their offline rules without one.

Example:
    >>> graphs = default_graphs(Settings(data_dir=tmp))  # doctest: +SKIP
    >>> sorted(graphs)  # doctest: +SKIP
    ['demo', 'health', 'hybrid', 'rag', 'resume']
    >>> knowledge_base(Settings(data_dir=tmp)).count()  # doctest: +SKIP
    0
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from weft.core.compiled import CompiledGraph
from weft.core.settings import Settings, get_settings
from weft.graphs.knowledge import KnowledgeBase

__all__ = ["GRAPH_NAMES", "GraphRegistry", "default_graphs", "knowledge_base"]

GRAPH_NAMES = ("rag", "hybrid", "demo", "resume", "health")
"""The names :func:`default_graphs` knows, in the order they are listed."""

_T = TypeVar("_T")
_lock = threading.Lock()
_kbs: dict[str, KnowledgeBase] = {}
_registries: dict[str, GraphRegistry] = {}


def _shared(cache: dict[str, _T], settings: Settings | None, make: Callable[[Settings], _T]) -> _T:
    """The one ``make(settings)`` for these settings (the current ones when None)."""
    cfg = settings if settings is not None else get_settings()
    key = cfg.model_dump_json()
    with _lock:
        value = cache.get(key)
        if value is None:
            value = cache[key] = make(cfg)
        return value


def knowledge_base(settings: Settings | None = None) -> KnowledgeBase:
    """The :class:`KnowledgeBase` for these settings (one per settings, shared by its graphs).

    The server uses it to check readiness (``count()``, ``is_empty()``) and ``ensure_demo()``.
    """
    return _shared(_kbs, settings, KnowledgeBase)


class GraphRegistry(Mapping[str, CompiledGraph[Any, Any]]):
    """A read-only mapping of graph name to compiled graph; each is built on first access."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._graphs: dict[str, CompiledGraph[Any, Any]] = {}
        self._lock = threading.Lock()
        self._builders: dict[str, Callable[[], CompiledGraph[Any, Any]]] = {
            "rag": self._rag,
            "hybrid": self._hybrid,
            "demo": self._demo,
            "resume": self._resume,
            "health": self._health,
        }

    @property
    def kb(self) -> KnowledgeBase:
        """The knowledge base the ``rag`` and ``hybrid`` graphs read."""
        return knowledge_base(self.settings)

    def _rag(self) -> CompiledGraph[Any, Any]:
        from weft.components.resilience import served_chat_model
        from weft.graphs.rag import build_rag_graph

        model = served_chat_model(self.settings)
        return build_rag_graph(self.kb, model=model, settings=self.settings, checkpointer=True)

    def _hybrid(self) -> CompiledGraph[Any, Any]:
        from weft.graphs.hybrid import build_hybrid_graph

        return build_hybrid_graph(self.kb, k=self.settings.top_k)

    def _demo(self) -> CompiledGraph[Any, Any]:
        from weft.graphs.demo import build_demo_graph

        return build_demo_graph()

    def _resume(self) -> CompiledGraph[Any, Any]:
        from weft.graphs._model import configured_model
        from weft.graphs.resume import JobIndex, build_resume_graph

        jobs = self.settings.data_dir / "jobs"
        index = JobIndex(jobs, data_dir=self.settings.data_dir) if jobs.is_dir() else None
        return build_resume_graph(
            index,
            model=configured_model(self.settings),
            allow_paths=False,
            max_bytes=self.settings.max_body_bytes,
        )

    def _health(self) -> CompiledGraph[Any, Any]:
        from weft.graphs.health._postgres import configured_parts
        from weft.graphs.health.graph import build_health_graph, health_checkpointer

        data_dir = self.settings.data_dir
        return build_health_graph(
            data_dir,
            checkpointer=health_checkpointer(data_dir, self.settings),
            **configured_parts(self.settings),
        )

    def __getitem__(self, name: str) -> CompiledGraph[Any, Any]:
        builder = self._builders.get(name)
        if builder is None:
            raise KeyError(f"unknown graph {name!r}; choose one of {', '.join(GRAPH_NAMES)}")
        with self._lock:
            graph = self._graphs.get(name)
            if graph is None:
                graph = self._graphs[name] = builder()
            return graph

    def __iter__(self) -> Iterator[str]:
        return iter(GRAPH_NAMES)

    def __len__(self) -> int:
        return len(GRAPH_NAMES)

    def __repr__(self) -> str:
        return f"GraphRegistry({list(GRAPH_NAMES)}, data_dir='{self.settings.data_dir}')"


def default_graphs(settings: Settings | None = None) -> GraphRegistry:
    """The ready graphs of :data:`GRAPH_NAMES` for these settings (cached).

    Graphs are compiled on first access; the same settings give the same registry.
    """
    return _shared(_registries, settings, GraphRegistry)
