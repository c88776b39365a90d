"""An installed enricher package, as a merchant would write one (``docs/enrichers.md``).

Its ``entry_points.txt`` registers ``loyalty`` in the ``vtex_synerise.enrichers`` group, so the
ETL runs it on every profile and transaction once the package is installed (here: once this
folder is on ``sys.path``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def loyalty(kind: str, document: Mapping[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """Profiles get ``attributes.loyaltyTier``; transactions get ``metadata.itemCount``."""
    if kind == "profile":
        tier = "vip" if document.get("isNewsletterOptIn") is True else "standard"
        payload.setdefault("attributes", {})["loyaltyTier"] = tier
    elif kind == "transaction":
        items = document.get("items") or []
        payload.setdefault("metadata", {})["itemCount"] = sum(
            int(item.get("quantity") or 0) for item in items
        )
    return payload
