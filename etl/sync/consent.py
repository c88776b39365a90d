"""Consent from Synerise to VTEX: set ``isNewsletterOptIn`` on the ``CL`` document, with no echo.

The other direction needs nothing special: a ``CL`` change reaches Synerise through the profile
upsert (``agreements.email`` from ``isNewsletterOptIn``, see ``etl.sync.realtime``).

Why no change bounces back and forth (the proof is ``tests/etl/webhooks/test_end_to_end.py``):

1. Write only what differs. A consent equal to the document's opt-in writes nothing, so the
   Synerise webhook that our own profile upsert may provoke ends here.
2. Our write fires VTEX's ``CL`` trigger. Before writing, the ``profiles`` ledger hash is moved
   (compare-and-set) from the payload of the document as it was to the payload with the new
   opt-in, but only when the ledger matched the old payload, that is when Synerise already held
   everything else: Synerise, where the change came from, now holds exactly the new payload. The
   trigger's upsert then finds an unchanged payload and sends nothing. When the ledger did not
   match, Synerise was missing something else anyway and the trigger sends the whole profile once
   (its consent equal to what Synerise has).
3. The ``EchoGuard`` remembers the value and the ``updatedIn`` of our write for a short TTL, so
   an upsert racing with our write (a document read just before it, or a trigger delivered late)
   carries Synerise's value rather than pushing the old one back; a document changed in VTEX
   after our write is newer and wins.
"""

from __future__ import annotations

from typing import Any

from etl.errors import SkippableRecordError
from etl.redaction import fingerprint
from etl.sync.changes import ConsentChange
from etl.sync.realtime import Realtime, recorded
from etl.sync.streams import Fetched, Stream
from etl.vtex.client import VtexClient
from schemas.mapping import payload_hash
from schemas.reasons import RejectReason

__all__ = ["apply_consent", "find_customer"]

SCOPE = "customers_updated"
OPT_IN = "isNewsletterOptIn"


def apply_consent(rt: Realtime, change: ConsentChange, *, final_attempt: bool = True) -> str:
    """Write a Synerise consent change to the customer's ``CL`` document if it differs."""
    stream = rt.engine.stream(SCOPE)
    namespace = rt.engine.mapping.salt_namespace
    key = change.custom_id or f"email:{fingerprint((change.email or '').lower(), namespace)}"
    value = change.email_agreement

    def work() -> str:
        vtex = rt.engine.vtex
        fields = [*rt.engine.mapping.profile_source_fields, "updatedIn"]
        document = find_customer(vtex, change, fields)
        if document is None:
            if not rt.engine.settings.consent_create_missing_cl:
                return rt.reject(
                    SCOPE, stream.ledger, key, RejectReason.NOT_FOUND,
                    "no CL document has this customId (userId) or e-mail;"
                    " CONSENT_CREATE_MISSING_CL=true would create one",
                )  # fmt: skip
            return _create(rt, stream, change, fields)
        if document.get(OPT_IN) == value:
            rt.count(SCOPE, read=1, skipped=1)
            return "unchanged"
        document_id = str(document["id"])
        rt.echo.remember(document_id, value)  # before the write: its trigger may come at once
        _adopt(rt, stream, document, {**document, OPT_IN: value})
        if not vtex.patch_customer(document_id, {OPT_IN: value}):
            return rt.reject(SCOPE, stream.ledger, document_id, RejectReason.NOT_FOUND,
                             "the CL document was deleted before the consent was written")
        written = vtex.get_customer(document_id, ["id", "updatedIn"]) or {}
        rt.echo.remember(document_id, value, written.get("updatedIn"))
        rt.count(SCOPE, read=1, sent=1)
        return "written"

    return recorded(rt, SCOPE, stream.ledger, key, final_attempt, work)


def find_customer(
    vtex: VtexClient, change: ConsentChange, fields: list[str]
) -> dict[str, Any] | None:
    """The customer's ``CL`` document: by ``userId`` = customId, else by e-mail.

    Search is eventually consistent, so the match is read again by id (strongly consistent)
    before its opt-in is compared.
    """
    found = None
    if change.custom_id:
        found = vtex.find_customer_by_user_id(change.custom_id, ["id"])
    if found is None and change.email:
        documents, _ = vtex.search_customers(f"email={change.email}", ["id"], "updatedIn DESC",
                                             0, 1)  # fmt: skip
        found = documents[0] if documents else None
    if found is None or not found.get("id"):
        return None
    return vtex.get_customer(str(found["id"]), fields)


def _create(rt: Realtime, stream: Stream, change: ConsentChange, fields: list[str]) -> str:
    """Create the missing ``CL`` document (``CONSENT_CREATE_MISSING_CL``) holding the consent."""
    vtex = rt.engine.vtex
    body: dict[str, Any] = {OPT_IN: change.email_agreement}
    if change.email:
        body["email"] = change.email
    if change.custom_id:
        body["userId"] = change.custom_id
    answer = vtex.upsert_customer(body)
    document_id = str(
        answer.get("DocumentId") or answer.get("documentId") or answer.get("Id") or ""
    ).removeprefix("CL-")
    document = vtex.get_customer(document_id, fields) if document_id else None
    if document is None:
        return rt.reject(SCOPE, stream.ledger, document_id or "?", RejectReason.NOT_FOUND,
                         "VTEX created the CL document but it cannot be read back")
    rt.echo.remember(document_id, change.email_agreement, document.get("updatedIn"))
    # Every field of the new document came from Synerise: it already holds this payload.
    _adopt(rt, stream, None, document)
    rt.count(SCOPE, read=1, sent=1)
    return "created"


def _adopt(
    rt: Realtime, stream: Stream, before: dict[str, Any] | None, after: dict[str, Any]
) -> None:
    """Record in the ledger that Synerise holds ``after``'s payload, if it held ``before``'s.

    ``before=None`` stands for "no profile payload recorded yet".
    """
    key = str(after["id"])
    try:
        new = payload_hash(stream.payload(Fetched(key, after)))
        old = payload_hash(stream.payload(Fetched(key, before))) if before else None
    except SkippableRecordError:
        return  # the document cannot become a profile at all; nothing to keep in step
    known = rt.engine.store.ledger.hashes(stream.ledger, [key]).get(key)
    if known == old:
        run_id = rt.runs.run_id(SCOPE)
        rt.engine.store.ledger.swap_hash(stream.ledger, key, old, new, run_id)
