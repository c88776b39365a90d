"""The Celery application: ``celery -A workers.app worker``.

Settings come from ``celeryconfig``; task modules are thin wrappers over ``etl``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

__all__ = ["app"]

app = Celery("vtex_synerise_etl", include=["workers.tasks.sync", "workers.tasks.realtime"])
app.config_from_object("celeryconfig")


@app.on_after_configure.connect
def _resolve_broker(sender: Celery, source: Any, **_: Any) -> None:
    """No ``REDIS_URL`` and no running embedded Redis: start it now, on first use, not at import."""
    if not source.broker_url:
        from etl.infra import resolve_urls

        source.broker_url = resolve_urls()[0]
