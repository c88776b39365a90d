"""Flower with its Prometheus ``/metrics`` behind the same authentication as its pages.

Flower 2.2 marks its pages and its API ``@tornado.web.authenticated`` but not the ``Metrics``
handler, so ``/metrics`` (task names, worker names, queue lengths) answers anyone, even when
``FLOWER_BASIC_AUTH`` is set. ``python -m workers.flower ARGS`` wraps that one handler the way
Flower wraps the others, then runs ``celery -A workers.app flower ARGS``: a request without the
credentials gets Flower's own 401. ``/healthcheck`` stays open: it says ``OK`` and nothing else,
and container health checks call it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import tornado.web
from flower.views import monitor

__all__ = ["main", "protect_metrics"]


def protect_metrics() -> None:
    """Make ``/metrics`` ask for the credentials every other Flower page asks for (idempotent)."""
    handler = monitor.Metrics
    if not getattr(handler.get, "requires_login", False):
        protected = tornado.web.authenticated(handler.get)
        protected.requires_login = True  # type: ignore[attr-defined]
        handler.get = protected


def main(argv: Sequence[str]) -> int:
    """``celery -A workers.app flower ARGV`` with ``/metrics`` protected."""
    protect_metrics()
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", "-A", "workers.app", "flower", *argv]
    return celery_main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
