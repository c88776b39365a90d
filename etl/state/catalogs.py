"""Synerise catalogs (``synerise_catalog``): which catalog a workspace's products go to.

The products stream finds its catalog by name, or creates it, once, and keeps the id here so
every worker and every later run writes to the same one. Finding or creating happens inside a
transaction holding an advisory lock on ``(workspace, name)``: two workers starting together make
one catalog, not two. After Synerise answers 404 for the catalog (it was deleted), ``resolve``
with ``stale`` set to the dead id looks again: the first caller finds or creates a new catalog,
the others find the row moved on and take the new id.

``workspace`` names a Synerise workspace without a secret (``etl.sync.catalog`` builds it from
the API host and workspace); a later connections feature can key the rows per connection.
"""

from __future__ import annotations

from collections.abc import Callable

from etl.state.db import Connections

__all__ = ["SyneriseCatalogs"]


class SyneriseCatalogs:
    """Catalog ids by workspace and name. Safe to share between threads."""

    def __init__(self, db: Connections) -> None:
        self.db = db

    def get(self, workspace: str, name: str) -> int | None:
        """The remembered catalog id, ``None`` when there is none yet."""
        row = self.db.fetch_one(
            "SELECT catalog_id FROM synerise_catalog WHERE workspace = %s AND name = %s",
            (workspace, name),
        )
        return int(row["catalog_id"]) if row else None

    def resolve(
        self,
        workspace: str,
        name: str,
        find_or_create: Callable[[int | None], int],
        stale: int | None = None,
    ) -> int:
        """The catalog id to use, finding or creating the catalog (``find_or_create(stale)``,
        called with the lock held) when none is remembered or the remembered one is ``stale``.

        ``find_or_create`` must not return ``stale`` unless the catalog really is back.
        """
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"synerise_catalog {workspace!r} {name!r}",),
            )
            cur.execute(
                "SELECT catalog_id FROM synerise_catalog WHERE workspace = %s AND name = %s",
                (workspace, name),
            )
            row = cur.fetchone()
            if row is not None and row["catalog_id"] != stale:
                return int(row["catalog_id"])
            catalog_id = int(find_or_create(stale))
            cur.execute(
                """INSERT INTO synerise_catalog (workspace, name, catalog_id) VALUES (%s, %s, %s)
                   ON CONFLICT (workspace, name) DO UPDATE SET catalog_id = EXCLUDED.catalog_id""",
                (workspace, name, catalog_id),
            )
            return catalog_id

    def forget(self, workspace: str, name: str) -> bool:
        """Drop a remembered catalog (the next sync finds or creates it again)."""
        with self.db.transaction() as cur:
            cur.execute(
                "DELETE FROM synerise_catalog WHERE workspace = %s AND name = %s", (workspace, name)
            )
            return bool(cur.rowcount)
