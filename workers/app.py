"""The Celery application: ``celery -A workers.app worker``.

Settings come from ``celeryconfig``; task modules are thin wrappers over ``etl``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from etl.redaction import install_log_redaction

__all__ = ["app"]

app = Celery("vtex_synerise_etl", include=["workers.tasks.sync", "workers.tasks.realtime"])
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


@signals.worker_ready.connect
def _start_upkeep(sender: Any, **_: Any) -> None:
    """Each worker renews its runs' leases and recovers lost chunks, beat or no beat.

    While workers live, their runs keep their slots even with tasks waiting in the queue; when
    the last worker dies, nobody renews, and the slots free themselves after the lease TTL.
    """
    from etl.errors import ConfigError
    from workers.tasks.sync import start_upkeep

    try:
        stop = start_upkeep()
    except ConfigError as error:  # a worker without credentials (selftest) has no runs to keep
        logging.getLogger(__name__).warning("run upkeep disabled: %s", error)
        return

    def _stop(**_: Any) -> None:
        stop.set()

    signals.worker_shutdown.connect(_stop, weak=False)
