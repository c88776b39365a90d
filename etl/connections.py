"""Connections: the VTEX account and Synerise workspace pair a run moves data between.

There is one, ``default``, configured by the ``VTEX_*`` and ``SYNERISE_*`` settings. Everything
that names a connection (``doctor --connection``, the console's start form, the ``connection``
label of every metric) asks this module, so several connections can be added in one place.
"""

from __future__ import annotations

__all__ = ["DEFAULT", "label", "names"]

DEFAULT = "default"


def names() -> tuple[str, ...]:
    """The connections this deployment has."""
    return (DEFAULT,)


def label(scope: str | None = None) -> str:
    """The connection a run (or a metric about a scope) belongs to: ``default`` for now."""
    del scope  # every scope belongs to the one connection
    return DEFAULT
