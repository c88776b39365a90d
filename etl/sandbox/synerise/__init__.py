"""The Synerise emulator: `workspace` (state, auth, answer shapes), `records` (profiles,
transactions, events), `app` (catalogs, inspection, the aiohttp application) and `rules`
(Synerise's validation rules, kept apart from the product's own on purpose)."""

from __future__ import annotations

from etl.sandbox.synerise.app import SyneriseSandbox
from etl.sandbox.synerise.workspace import (
    SANDBOX_API_KEY,
    SANDBOX_JWT_SECRET,
    SANDBOX_WORKSPACE_GUID,
)

__all__ = ["SANDBOX_API_KEY", "SANDBOX_JWT_SECRET", "SANDBOX_WORKSPACE_GUID", "SyneriseSandbox"]
