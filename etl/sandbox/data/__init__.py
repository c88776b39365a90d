"""VTEX-shaped data for the sandbox: generated (`Dataset`) or read from files (`FixtureDataset`),
with run-time changes kept in a small overlay (`Store`).

`Dataset` computes every record from ``(seed, index)`` alone, so a million customers cost no
memory and any one of them is ready in microseconds:

* customers are Master Data ``CL`` documents; ``createdIn`` grows with the index
  (``start + i * span / N`` plus a jitter smaller than one step), so the indices of a
  ``createdIn`` window are found by binary search. ``updatedIn`` is ``createdIn`` plus a delay
  of at most `Dataset.max_update_delay_ms`: an ``updatedIn`` window maps to the index range
  created in ``[from - max delay, to]``, of which only both ends need checking.
* orders are OMS Get order documents; ``creationDate`` grows with the index the same way,
  ``authorizedDate``/``invoicedDate`` lag it by a bounded delay. Order ``i`` has sequence
  ``10000000 + i`` and id ``v{sequence}{tag}-01``; a few odd-numbered orders are the second
  half (``-02``) of the previous order's ``orderGroup``.
* the catalog is `Dataset.products` products with 1-3 SKUs each (SKU id ``product * 1000 + k``).

Dirty records and ground truth
------------------------------
A share ``dirty_share`` of the records of each kind carries exactly one defect, named by
`Source.dirty_kind`; `Source.expected_reason` says whether the ETL must reject it and with
which `schemas.reasons.RejectReason` code (``None``: the record must be sent). The verdicts are
those of ``schemas.mapping`` with the default ``MappingConfig`` (phone fields ``phone``,
``homePhone``, ``cellPhone``, ``businessPhone`` in that order; money divided by 100).

Customer kinds (``CL``):

====================== ==================== ===============================================
kind                   expected reason      what the document holds
====================== ==================== ===============================================
invalid_email          INVALID_EMAIL        an e-mail Synerise's rule refuses (no TLD, two
                                            ``@``, a space, ``..``, a non-ASCII domain)
phone_with_letters     INVALID_PHONE        ``phone`` with letters (``+55 11 9ABC-4321``)
phone_too_long         INVALID_PHONE        ``phone`` longer than 20 characters
missing_identifier     MISSING_IDENTIFIER   no ``email`` and no ``userId`` (a form sign-up)
invalid_birthdate      (sent)               ``birthDate`` not a real date in 1900..today (sent
                                            without it, with a BIRTHDATE_DROPPED warning)
empty_names            (sent)               blank ``firstName`` / ``lastName``
phone_only_secondary   (sent)               ``phone`` empty, a valid ``cellPhone``/``homePhone``
unicode_names          (sent)               names in other scripts, emoji included
duplicate_email        (sent)               the e-mail of an earlier customer (kept apart by
                                            ``customId`` = ``userId``)
masked_email           (sent)               a hard Conversation Tracker alias as e-mail: it
                                            counts as no e-mail, the profile is keyed by userId
====================== ==================== ===============================================

A clean customer always has ``userId``, a valid e-mail, valid names, a valid (or no) phone and
a valid (or no) birth date. Because a record has one defect only, no precedence question
arises in generated data; for records changed at run time the mapping's own order applies:
``INVALID_EMAIL`` > ``MISSING_IDENTIFIER`` > ``MAPPING_ERROR`` (identifiers) > ``INVALID_PHONE``
(the first non-blank phone field decides, a valid secondary phone does not rescue a bad
``phone``). So a customer with an invalid e-mail and no valid phone is
``INVALID_EMAIL``; one with no e-mail, no ``userId`` and a valid phone is
``MISSING_IDENTIFIER`` (a phone is not an identifier for this ETL).

Order kinds:

====================== ==================== ===============================================
guest                  (sent)               a buyer with a ``userProfileId`` but no ``CL``
anonymous_guest        MISSING_IDENTIFIER   ``userProfileId`` ``""`` and a hard e-mail alias
canceled               (sent)               status ``canceled`` (every line flagged)
removed_item           (sent)               an extra line with quantity 0
zero_decimal_currency  (sent)               CLP or JPY (``CurrencyDecimalDigits`` 0; amounts
                                            still x100, VTEX's documented cents convention)
====================== ==================== ===============================================

A sent order whose buyer has no ``CL`` document (``Source.guest_order``: the ``guest`` kind, and
the second half of a guest's split order) also brings its buyer a guest profile; ``expected()``
counts them in ``orders.guest_profiles``.

Every order's ``clientProfileData.email`` is masked (``<md5>@ct.vtex.com.br``, or for a fifth
of registered buyers the soft form ``real@x-<n>b.ct.vtex.com.br``); the real address is only in
the buyer's ``CL`` document (``userId == userProfileId``).

Run-time changes (`Store`): status changes, customer creates/patches/deletes. A changed record
leaves the generated population: ground truth (`Source.expected`) always describes the
generated data only.

Modules: `timefmt` (VTEX time formats), `rng` (seeded hashing), `timelines` (time-ordered
index maps), `source` (the interface and ground truth), `words` (word lists), `generated`,
`customers`, `catalog`, `orders` and `dataset` (the generator, one layer per entity),
`fixtures` (documents read from files) and `overlay` (run-time changes).
"""

from __future__ import annotations

from etl.sandbox.data.customers import MAX_CUSTOMERS
from etl.sandbox.data.dataset import Dataset
from etl.sandbox.data.fixtures import FixtureDataset
from etl.sandbox.data.orders import MAX_ORDERS
from etl.sandbox.data.overlay import Store
from etl.sandbox.data.source import (
    CUSTOMER_DIRTY_KINDS,
    CUSTOMER_TIME_FIELDS,
    ORDER_DIRTY_KINDS,
    ORDER_TIME_FIELDS,
    Doc,
    Getter,
    NotSortable,
    Predicate,
    Ref,
    Source,
)
from etl.sandbox.data.timefmt import format_md_time, format_oms_time, parse_time

__all__ = [
    "CUSTOMER_DIRTY_KINDS",
    "CUSTOMER_TIME_FIELDS",
    "MAX_CUSTOMERS",
    "MAX_ORDERS",
    "ORDER_DIRTY_KINDS",
    "ORDER_TIME_FIELDS",
    "Dataset",
    "Doc",
    "FixtureDataset",
    "Getter",
    "NotSortable",
    "Predicate",
    "Ref",
    "Source",
    "Store",
    "format_md_time",
    "format_oms_time",
    "parse_time",
]
