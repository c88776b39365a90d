"""The VTEX emulator: `app` (the aiohttp application: OMS, Master Data, hook, catalog, prices),
`mdql` (Master Data's query language) and `protocol` (limits, error bodies, row shapes)."""

from __future__ import annotations

from etl.sandbox.vtex.app import VtexSandbox
from etl.sandbox.vtex.mdql import WhereError, parse_where
from etl.sandbox.vtex.protocol import DEFAULT_APP_KEY, DEFAULT_APP_TOKEN, vtex_error_body

__all__ = [
    "DEFAULT_APP_KEY",
    "DEFAULT_APP_TOKEN",
    "VtexSandbox",
    "WhereError",
    "parse_where",
    "vtex_error_body",
]
