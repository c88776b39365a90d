"""Undo this project's performance fixes in a benchmark's processes, to measure "before".

bench/customers.py and bench/orders.py put this folder on ``PYTHONPATH`` with
``BENCH_UNDO=mapping,http,lookup`` (any subset) for their "before" rows; Python imports
``sitecustomize`` at start-up, before any project module, so the patches below are what the
workers run. Each one restores the code as it was before the fix named in docs/benchmarks.md:

* ``mapping``: ``profile_from_customer`` dumps its result through ``ProfileSchema`` again;
* ``http``: sessions read proxy settings from the environment on every request again;
* ``lookup``: an orders chunk looks each buyer up in Master Data with its own search again.
"""

from __future__ import annotations

import os

_UNDO = {name.strip() for name in os.environ.get("BENCH_UNDO", "").split(",") if name.strip()}

if "mapping" in _UNDO:
    from schemas import mapping as _mapping
    from schemas.synerise import ProfileSchema as _ProfileSchema

    _fixed_profile = _mapping.profile_from_customer
    _schema = _ProfileSchema()

    def _profile_from_customer(doc, config, **options):  # type: ignore[no-untyped-def]
        return _schema.dump(_fixed_profile(doc, config, **options))

    _mapping.profile_from_customer = _profile_from_customer

if "http" in _UNDO:
    import requests as _requests

    from etl import http as _http

    _http._Session.merge_environment_settings = (  # type: ignore[method-assign]
        _requests.Session.merge_environment_settings
    )

if "lookup" in _UNDO:
    from etl.vtex.client import VtexClient as _VtexClient

    def _one_search_per_buyer(self, user_ids, fields, batch_size=50):  # type: ignore[no-untyped-def]
        from concurrent.futures import ThreadPoolExecutor

        wanted = list(dict.fromkeys(user_ids))
        if not wanted:
            return {}
        threads = int(os.environ.get("SYNC_FETCH_CONCURRENCY") or 8)
        with ThreadPoolExecutor(max_workers=min(threads, len(wanted))) as pool:
            found = pool.map(lambda uid: self.find_customer_by_user_id(uid, fields), wanted)
            return {uid: doc for uid, doc in zip(wanted, found, strict=True) if doc is not None}

    _VtexClient.find_customers_by_user_ids = _one_search_per_buyer  # type: ignore[method-assign]
