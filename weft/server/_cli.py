"""The `weft` commands of this package; `weft/cli.py` calls :func:`add_commands`."""

from __future__ import annotations

from typing import Any

__all__ = ["add_commands"]


def add_commands(subparsers: Any) -> None:
    """Add this package's commands to the CLI's subparsers."""
