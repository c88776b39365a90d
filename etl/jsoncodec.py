"""JSON on the hot paths (VTEX pages, chunk payloads in PostgreSQL), by ``orjson``.

A customers sync decodes every ``CL`` document from its search page, encodes it into its chunk
row and decodes it again in the worker; the standard library spends about 10 µs of CPU per
document on that, ``orjson`` a third of it (docs/benchmarks.md, "Against a competent peer").
What must stay byte for byte as it was (the canonical JSON the ledger hashes,
``schemas.canonical``) keeps the standard library.

``orjson`` reads integers beyond 64 bits as floats; nothing VTEX or Synerise sends is one.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads"]


def loads(data: bytes | bytearray | str) -> Any:
    """Decode JSON.

    Raises:
        ValueError: not JSON (``json.JSONDecodeError``).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # the standard library's reading (and error) of the odd case


def dumps(value: Any) -> str:
    """Compact JSON text of lists, dicts (string keys), strings, numbers, booleans and ``None``;
    ``NaN`` and infinities become ``null``, as in JavaScript (what is written here was decoded
    from JSON and holds neither).

    Raises:
        TypeError: a value JSON cannot hold.
    """
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as error:
        raise TypeError(str(error)) from None
