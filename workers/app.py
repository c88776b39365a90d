"""The Celery application: ``celery -A workers.app worker``.

Settings come from ``celeryconfig``; task modules are thin wrappers over ``etl`` and import this
module, never the other way round (``include`` names them; the worker imports them at start-up).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from etl.redaction import install_log_redaction

__all__ = ["app"]

app = Celery(
    "vtex_synerise_etl",
    include=["workers.tasks.sync", "workers.tasks.realtime"],
    task_cls="workers.consumer:Task",  # acknowledgements that outlive a lost connection
)
app.config_from_object("celeryconfig")


@app.on_after_configure.connect
def _resolve_broker(sender: Celery, source: Any, **_: Any) -> None:
    """No ``REDIS_URL`` and no running embedded Redis: start it now, on first use, not at import."""
    if not source.broker_url:
        from etl.infra import resolve_urls

        source.broker_url = resolve_urls()[0]


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger, **_: Any) -> None:
    """Keep secrets and personal data out of worker logs (the task logger does not propagate)."""
    log_filter = install_log_redaction()
    for handler in logger.handlers:
        if log_filter not in handler.filters:
            handler.addFilter(log_filter)


@signals.worker_process_shutdown.connect
def _flush_api_usage(**_: Any) -> None:
    """A prefork child ends with ``os._exit`` (no atexit): send its API traffic counts first."""
    from etl.apiusage import flush_all

    flush_all()
