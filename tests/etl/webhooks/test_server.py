"""The gunicorn wrapper's own behaviour (serving for real is in ``test_cli.py``)."""

from __future__ import annotations

import gc

from etl.webhooks.server import GunicornServer


def test_each_worker_freezes_what_it_loaded_out_of_the_collector():
    """A full collection over the imported modules would stall every request thread."""
    built = []
    server = GunicornServer(lambda: built.append(object()) or "the app", "127.0.0.1:0")
    before = gc.get_freeze_count()
    try:
        assert server.load() == "the app"
        assert len(built) == 1
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
