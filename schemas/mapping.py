"""VTEX records to Synerise payloads: the mapping's public API, pure functions, no I/O.

* `profile_from_customer`: a Master Data ``CL`` document to a ``/v4/clients/batch`` item
  (`schemas.profiles`);
* `guest_profile_from_order`: a minimal ``/v4/clients/batch`` item for a buyer without a ``CL``
  document, sent before the order's transaction (`schemas.profiles`);
* `transaction_from_order`: an OMS order (plus the buyer's ``CL`` document, for the real e-mail)
  to a ``/v4/transactions/batch`` item (`schemas.transactions`);
* `catalog_item` / `catalog_tombstone`: a Catalog SKU (plus its Pricing price) to a
  ``/catalogs/bags/{id}/items/batch`` item, or the item of a SKU gone from VTEX
  (`schemas.catalog`);
* `payload_hash`: what the entity ledger compares to skip unchanged records.

Input is loaded with `schemas.vtex`, output is dumped with `schemas.synerise`. A record that
cannot be sent raises `etl.errors.SkippableRecordError` with a `RejectReason`; an optional field
that cannot be sent is left out and, when the caller passes a ``warnings`` list, reported there
as a `FieldWarning` (one list per record: the functions keep no state; when a function raises,
discard the list with the record). Field by field, the mapping is documented in
``docs/mapping.md``.
"""

from __future__ import annotations

from schemas.canonical import payload_hash
from schemas.catalog import CatalogConfig, catalog_item, catalog_tombstone
from schemas.mapping_config import MappingConfig
from schemas.profiles import guest_profile_from_order, profile_from_customer
from schemas.reasons import FieldWarning, WarningCode
from schemas.transactions import UNKNOWN_PAYMENT_METHOD, transaction_from_order

__all__ = [
    "UNKNOWN_PAYMENT_METHOD",
    "CatalogConfig",
    "FieldWarning",
    "MappingConfig",
    "WarningCode",
    "catalog_item",
    "catalog_tombstone",
    "guest_profile_from_order",
    "payload_hash",
    "profile_from_customer",
    "transaction_from_order",
]
