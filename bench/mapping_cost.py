"""CPU per customer of each per-record step of the chunk path, in this process (no servers).

For the sandbox's generated ``CL`` documents (dirty ones included): the whole mapping
(``schemas.mapping.profile_from_customer``), marshmallow's ``load`` of the document alone, a
lean load that checks the same declared types in plain Python (what marshmallow would cost if
it only type-checked), the ledger hash (``payload_hash``), the batch encoding
(``encode_item``) and the redaction of a rejected record's payload. The lean load must give
the same dict as marshmallow's for every document it accepts; the benchmark says if not.

Process CPU time (``time.process_time``), best of several passes: the machine is shared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from bench.harness import log, table

NAME = "mapping_cost"

PARAMS = {"quick": {"customers": 5_000, "passes": 3}, "full": {"customers": 20_000, "passes": 7}}

__all__ = ["lean_load", "run"]


def lean_load(doc: Mapping[str, Any], text_fields: tuple[str, ...]) -> dict[str, Any]:
    """The ``CL`` fields the mapping reads, type-checked in plain Python (strings, one boolean).

    Raises:
        ValueError: a declared field holds a value of the wrong type.
    """
    out: dict[str, Any] = {}
    for name in text_fields:
        if name in doc:
            value = doc[name]
            if value is not None and type(value) is not str:
                raise ValueError(name)
            out[name] = value
    if "isNewsletterOptIn" in doc:
        value = doc["isNewsletterOptIn"]
        try:
            if value is not None:
                value = _truth(value)
        except TypeError:  # unhashable
            raise ValueError("isNewsletterOptIn") from None
        out["isNewsletterOptIn"] = value
    return out


def _truth(value: Any) -> bool:
    """marshmallow's own reading of a boolean (``fields.Boolean.truthy`` / ``falsy``)."""
    from marshmallow import fields

    if value in fields.Boolean.truthy:
        return True
    if value in fields.Boolean.falsy:
        return False
    raise ValueError("isNewsletterOptIn")


def _best(passes: int, items: list[Any], step: Callable[[Any], object]) -> float:
    """Best per-item CPU µs over ``passes`` passes (exceptions count as work done)."""
    best = float("inf")
    for _ in range(passes):
        started = time.process_time()
        for item in items:
            try:
                step(item)
            except Exception:  # a rejected record is part of the cost
                continue
        best = min(best, time.process_time() - started)
    return best / len(items) * 1e6


def run(mode: str = "full") -> list[dict[str, Any]]:
    from etl.redaction import redact_payload
    from etl.sandbox.data import Dataset
    from etl.synerise.batching import encode_item
    from schemas.mapping import MappingConfig, payload_hash, profile_from_customer
    from schemas.vtex import CustomerDocumentSchema, customer_schema

    params = PARAMS[mode]
    data = Dataset(customers=params["customers"], orders=0, seed=1)
    docs = [data.customer(i) for i in range(data.customer_count)]
    config = MappingConfig()
    schema = customer_schema(config.extra_attributes, config.phone_fields)
    text_fields = tuple(
        name for name in CustomerDocumentSchema._declared_fields if name != "isNewsletterOptIn"
    )
    payloads = []
    for doc in docs:
        try:
            payloads.append(profile_from_customer(doc, config))
        except Exception:  # rejected: no payload
            continue
    differ = 0
    for doc in docs:
        try:
            marshmallow = schema.load(doc)
        except Exception:  # refused by marshmallow: nothing to compare
            continue
        try:
            differ += lean_load(doc, text_fields) != marshmallow
        except ValueError:
            differ += 1
    passes = params["passes"]
    steps = [
        ("mapping: profile_from_customer (load + rules)", docs,
         lambda doc: profile_from_customer(doc, config)),
        ("  of which marshmallow load of the document", docs, schema.load),
        ("  a lean load: the same type checks in plain Python", docs,
         lambda doc: lean_load(doc, text_fields)),
        ("ledger hash: payload_hash", payloads, payload_hash),
        ("batch encoding: encode_item", payloads, encode_item),
        ("redaction of a rejected payload: redact_payload", docs, redact_payload),
    ]  # fmt: skip
    rows = [
        {"kind": "step", "step": label, "cpu_us_per_record": round(_best(passes, items, f), 2)}
        for label, items, f in steps
    ]
    log(f"mapping_cost: lean load differs from marshmallow's on {differ} of {len(docs)} documents")
    print(table(
        f"CPU µs per customer ({len(docs)} generated CL documents, best of {passes} passes)",
        ["step", "CPU µs"],
        [[r["step"], r["cpu_us_per_record"]] for r in rows],
    ))  # fmt: skip
    return [*rows, {"kind": "check", "lean_differs": differ, "documents": len(docs)}]
