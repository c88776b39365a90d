"""Enrichers the tests name by path (``ENRICHERS=tests.helpers.enrichers:marked``).

``MARKED`` maps a record id (a ``CL`` document id or an order id) to what ``marked`` does to it:
``"raise"`` (a bug in the hook) or ``"veto"``; other records get ``attributes.marked = false``.
The in-process worker shares this module with the test that fills it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from schemas.enrichment import Veto

EXAMPLE_PACKAGE = Path(__file__).parent / "enricher_package"
"""A folder holding an installed enricher distribution (its ``.dist-info`` registers the
``loyalty`` entry point): put it on ``sys.path`` and the ETL finds it."""

MARKED: dict[str, str] = {}


def marked(kind: str, document: Mapping[str, Any], payload: dict[str, Any]) -> None:
    action = MARKED.get(str(document.get("id") or document.get("orderId")))
    if action == "raise":
        raise RuntimeError("the hook has a bug")
    if action == "veto":
        raise Veto("test accounts stay out of Synerise")
    payload.setdefault("attributes" if kind == "profile" else "metadata", {})["marked"] = False
