"""weft: typed components compiled into LangGraph graphs.

Build a :class:`Graph` or :class:`Chain` of typed components, ``compile()`` it (edges are
type-checked), then ``invoke``, ``stream`` or ``batch`` it, sync or async. The names here are
those of :mod:`weft.core`; the layers above it (``weft.components``, ``weft.graphs``, ...) are
imported by their own names.
"""

from weft import core
from weft.core import *  # noqa: F403

__version__ = "0.1.0"

__all__ = ["__version__"]
__all__ += core.__all__
