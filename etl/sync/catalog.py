"""The Synerise catalog a products sync writes to: found by name or created, remembered in
PostgreSQL, recreated once when Synerise says it is gone.

The id is resolved once per workspace and name under a PostgreSQL lock (``synerise_catalog``,
`etl.state.catalogs`), so concurrent workers never make two catalogs. A 404 on an items batch
means the catalog was deleted: after Synerise's Magento module, the target finds or creates it
again and resends the batch once (`send`); a second 404 fails the chunk.

Payloads carry the catalog id they were built for (``catalogId``, stripped before sending), so
the entity ledger's hash changes with the catalog: after a recreation, or a new
``SYNERISE_CATALOG_NAME``, every item is sent to the new catalog once instead of being skipped as
unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from etl.errors import CatalogNotFoundError
from etl.synerise.batching import BatchResult

if TYPE_CHECKING:
    from etl.config import Settings
    from etl.state.catalogs import SyneriseCatalogs
    from etl.synerise.client import SyneriseClient

__all__ = ["CatalogTarget", "workspace_key"]

log = logging.getLogger(__name__)


def workspace_key(settings: Settings) -> str:
    """Which Synerise workspace the settings write to, without a secret: the API host and the
    workspace GUID (Basic auth) or a short SHA-256 fingerprint of the API key (JWT login)."""
    if settings.synerise_workspace_guid:
        who = f"guid:{settings.synerise_workspace_guid}"
    elif settings.synerise_api_key is not None:
        digest = hashlib.sha256(settings.synerise_api_key.reveal().encode()).hexdigest()
        who = f"key:{digest[:16]}"
    else:
        who = "unknown"
    return f"{settings.synerise_api_host} {who}"


class CatalogTarget:
    """One Synerise catalog, by name, in one workspace. Safe to share between threads.

    Args:
        synerise: the workspace's client.
        catalogs: the ``synerise_catalog`` table.
        workspace: `workspace_key` of the settings.
        name: ``SYNERISE_CATALOG_NAME``.
    """

    def __init__(
        self, synerise: SyneriseClient, catalogs: SyneriseCatalogs, workspace: str, name: str
    ) -> None:
        self.synerise = synerise
        self.catalogs = catalogs
        self.workspace = workspace
        self.name = name
        self._lock = threading.Lock()
        self._id: int | None = None

    def __repr__(self) -> str:
        return f"CatalogTarget({self.name!r})"

    def known_id(self) -> int | None:
        """The remembered id (PostgreSQL, no Synerise call), ``None`` before the first sync:
        what a dry run may use, since it must create nothing."""
        return self.catalogs.get(self.workspace, self.name)

    def ensure(self) -> int:
        """The catalog's id: remembered, else found by name, else created."""
        with self._lock:
            if self._id is None:
                self._id = self.catalogs.resolve(self.workspace, self.name, self._find_or_create)
            return self._id

    def recreate(self, stale: int) -> int:
        """After a 404 for ``stale``: find or create the catalog again (once for all workers)."""
        with self._lock:
            self._id = self.catalogs.resolve(
                self.workspace, self.name, self._find_or_create, stale=stale
            )
            log.warning(
                "Synerise catalog %r (id %s) is gone; sending to catalog %s from now on",
                self.name, stale, self._id,
            )  # fmt: skip
            return self._id

    def send(self, items: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Add or replace items; a 404 recreates the catalog and resends them once.

        Raises:
            CatalogNotFoundError: the catalog answered 404 again right after it was recreated.
        """
        catalog_id = self.ensure()
        try:
            return self.synerise.upsert_catalog_items(catalog_id, items)
        except CatalogNotFoundError as gone:
            return self.synerise.upsert_catalog_items(self.recreate(gone.catalog_id), items)

    def _find_or_create(self, stale: int | None) -> int:
        found = self.synerise.find_catalog(self.name)
        if found is not None and found != stale:
            return found
        return self.synerise.create_catalog(self.name)
