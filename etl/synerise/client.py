"""Synerise client: profiles, transactions, events and catalog items in batches.

Every batch method takes the records of one logical call and returns a ``BatchResult`` whose
indexes point into the caller's sequence, so the pipeline can record each record's fate:

* the items are split into batches of ``batch_size`` and at most 1 MB (``batching``); an item
  that cannot be sent at all is rejected with the reason. By default a batch holds up to 1,000
  items where Synerise documents that limit (profiles, events) and 100 elsewhere
  (transactions, catalog items: their limits are UNCONFIRMED);
* 202 (or any 2xx) accepts the batch; a 207 rejects the items its errors name, and, when it
  names none or not all (its format is UNCONFIRMED), the items it does not name as well;
* an item a 207 refuses only with transient codes (429, 408, 5xx) is not rejected: those items
  alone are resent with the retry policy's backoff, and rejected only when they are still
  refused after its ``max_attempts`` (so a passing overload never turns good records into
  rejects);
* a 400/413/422 of a whole batch is bisected down to the items Synerise refuses;
* retriable answers (429, 5xx, 408, network) are retried with backoff (``Retry-After`` wins)
  and then raised: batches already sent are upserts or carry a salt, so the chunk that
  failed can run again; fatal answers (credentials, permissions, anything unexpected) raise
  ``FatalError``. A 415 is fatal, not bisected: it blames our ``Content-Type``, never an item.

Example:
    >>> synerise = SyneriseClient.from_settings(settings)
    >>> result = synerise.upsert_profiles([{"customId": "u1", "email": "a@example.com"}])
    >>> result.accepted, result.rejected
    ([0], {})
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from requests.auth import AuthBase

from etl.errors import Body, CatalogNotFoundError, ConfigError, FatalError, SkippableRecordError
from etl.http import HttpClient, Timeout, decode_body, describe_body, new_session
from etl.retry import RetryPolicy
from etl.synerise.auth import API_HEADERS, HINTS, BasicAuth, TokenAuth
from etl.synerise.batching import (
    MAX_BATCH_ITEMS,
    Attribution,
    Batch,
    BatchRefused,
    BatchResult,
    bisect,
    parse_partial_errors,
    split_batches,
)
from schemas.reasons import RejectReason

if TYPE_CHECKING:
    from etl.config import Settings
    from etl.ratelimit import RateBudget

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DELETE_BY_CUSTOM_ID",
    "DOCUMENTED_BATCH_PATHS",
    "PERMISSION_CHECK_PATH",
    "SPLIT_STATUSES",
    "BatchResult",
    "SyneriseClient",
]

log = logging.getLogger(__name__)

DOCUMENTED_BATCH_PATHS = frozenset({"/v4/clients/batch", "/v4/events/batch"})
"""Where Synerise documents 1,000 items and 1 MB per call: batches fill up to that by default.
A chunk of 1,000 customers is one call instead of ten, which cut a tenth of the CPU per customer
(docs/benchmarks.md, section 7)."""
DEFAULT_BATCH_SIZE = 100
"""Items per call elsewhere (transactions, catalog items), whose limits are UNCONFIRMED."""

SPLIT_STATUSES = frozenset({400, 413, 422})
"""Whole-batch refusals that blame the content: bisected to find the bad items."""

DELETE_BY_CUSTOM_ID = "/v4/clients/by-customid/{custom_id}"
"""Newest generated client's path; Synerise's older clients and M2 use ``by-custom-id``
(CONFLICT in docs, verify on a workspace and pass ``delete_path``)."""

PERMISSION_CHECK_PATH = "/uauth/api-key/permission-check"

PartialParser = Callable[[Body, int], Attribution]

Missing = Callable[[requests.Response], Exception]
"""Builds the error for a 404 on a batch path whose parent can vanish (a deleted catalog)."""

_BAGS_PAGE = 100
"""Catalogs per ``GET /catalogs/bags`` page."""
_BAGS_SCANNED = 10_000
"""Most catalogs a name search reads (a workspace has a handful; this bounds a server loop)."""


class SyneriseClient:
    """Writes to one Synerise workspace.

    Args:
        base_url: the API host (``settings.synerise_api_host`` resolves the region).
        auth: ``TokenAuth`` or ``BasicAuth`` (any ``requests`` auth).
        session: a session to use as is (share it with ``TokenAuth``); default: a pooled one.
        budget: the shared ``synerise`` rate budget.
        retry: the retry policy (default ``RetryPolicy()``).
        batch_size: items per batch call, 1..1000, on every path; default: 1,000 on
            ``DOCUMENTED_BATCH_PATHS``, ``DEFAULT_BATCH_SIZE`` elsewhere.
        timeout: ``(connect, read)`` seconds.
        pool_maxsize: connections kept per host when the session is created here.
        delete_path: the delete-by-customId path, with ``{custom_id}``.
        partial_parser: reads a 207 body (default ``parse_partial_errors``).
    """

    def __init__(
        self,
        base_url: str,
        auth: AuthBase,
        session: requests.Session | None = None,
        budget: RateBudget | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int | None = None,
        timeout: Timeout = (5.0, 30.0),
        *,
        pool_maxsize: int = 16,
        delete_path: str = DELETE_BY_CUSTOM_ID,
        partial_parser: PartialParser = parse_partial_errors,
    ) -> None:
        if batch_size is not None and not 1 <= batch_size <= MAX_BATCH_ITEMS:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH_ITEMS}, got {batch_size!r}")
        if "{custom_id}" not in delete_path:
            raise ValueError("delete_path must contain '{custom_id}'")
        self.http = HttpClient(
            base_url,
            service="Synerise",
            session=session,
            auth=auth,
            budget=budget,
            retry=retry,
            timeout=timeout,
            pool_maxsize=pool_maxsize,
            headers=API_HEADERS,
            hints=HINTS,
        )
        self.batch_size = batch_size
        self.delete_path = delete_path
        self.partial_parser = partial_parser
        self._catalogs: dict[str, int] = {}
        self._catalogs_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        budget: RateBudget | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
    ) -> SyneriseClient:
        """Build from ``etl.config.Settings``: Basic auth when ``SYNERISE_WORKSPACE_GUID`` is
        set, otherwise a JWT login; both share one pooled session.

        Raises:
            ConfigError: ``SYNERISE_API_KEY`` is not configured.
        """
        if settings.synerise_api_key is None:
            raise ConfigError("SYNERISE_API_KEY", "a workspace API key")
        session = session or new_session(max(10, 2 * settings.sync_fetch_concurrency))
        base_url = settings.synerise_api_host
        auth: AuthBase
        if settings.synerise_workspace_guid:
            auth = BasicAuth(settings.synerise_workspace_guid, settings.synerise_api_key)
        else:
            auth = TokenAuth(base_url, settings.synerise_api_key, session)
        return cls(
            base_url,
            auth,
            session=session,
            budget=budget,
            retry=retry,
            batch_size=settings.synerise_batch_size,
        )

    def __repr__(self) -> str:
        return f"SyneriseClient({self.http.base_url!r}, auth={self.http.auth!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self.http.session.close()

    # -- batches ------------------------------------------------------------------------------

    def upsert_profiles(self, items: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Create or update profiles (``POST /v4/clients/batch``; null clears a field)."""
        return self._send_batches("/v4/clients/batch", items)

    def send_transactions(self, items: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Send transactions (``POST /v4/transactions/batch``); a resend with the same
        ``eventSalt`` and ``recordedAt`` overwrites instead of duplicating."""
        return self._send_batches("/v4/transactions/batch", items)

    def send_events(self, items: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Send events (``POST /v4/events/batch``); give each an ``eventSalt`` so a resend
        overwrites."""
        return self._send_batches("/v4/events/batch", items)

    def upsert_catalog_items(
        self, catalog_id: int, items: Sequence[Mapping[str, Any]]
    ) -> BatchResult:
        """Add or replace catalog items ``{itemKey, value}``
        (``POST /catalogs/bags/{catalogId}/items/batch``).

        Raises:
            CatalogNotFoundError: Synerise answered 404: the catalog is gone (deleted). Batches
                sent before it went to that catalog; find or create it again and resend.
        """
        catalog_id = int(catalog_id)

        def gone(response: requests.Response) -> CatalogNotFoundError:
            text = describe_body(decode_body(response))
            return CatalogNotFoundError(
                catalog_id, f"Synerise catalog {catalog_id} not found (404): {text}"
            )

        return self._send_batches(f"/catalogs/bags/{catalog_id}/items/batch", items, gone)

    # -- single calls -------------------------------------------------------------------------

    def send_custom_event(self, event: Mapping[str, Any]) -> None:
        """Send one event (``POST /v4/events/custom``).

        Raises:
            SkippableRecordError: Synerise refused the event's content (400/413/422); the key
                is its ``eventSalt`` (or ``action``).
        """
        response = self.http.request(
            "POST", "/v4/events/custom", json=dict(event), allow=SPLIT_STATUSES
        )
        if response.status_code in SPLIT_STATUSES:
            key = str(event.get("eventSalt") or event.get("action") or "event")
            raise SkippableRecordError(
                RejectReason.SYNERISE_REJECTED, _refusal_text(response), key
            )

    def delete_profile_by_custom_id(self, custom_id: str) -> bool:
        """Delete a profile by ``customId`` (``delete_path``); ``False`` when none exists (404)."""
        if not custom_id:
            raise ValueError("custom_id must not be empty")
        path = self.delete_path.format(custom_id=quote(custom_id, safe=""))
        return self.http.request("DELETE", path, allow={404}).status_code != 404

    def check_permissions(self, names: Sequence[str]) -> tuple[str | None, dict[str, bool]]:
        """Which of ``names`` the API key holds (``POST /uauth/api-key/permission-check``).

        Returns:
            The workspace name (``businessProfileName``) and ``{permission: granted}``; a
            permission the answer leaves out counts as not granted.
        """
        response = self.http.request(
            "POST", PERMISSION_CHECK_PATH, json={"permissionsToCheck": list(names)}
        )
        body = decode_body(response)
        if not isinstance(body, dict) or not isinstance(body.get("permissions"), dict):
            raise FatalError("Synerise answered the permission check without 'permissions'")
        granted = body["permissions"]
        name = body.get("businessProfileName")
        return (str(name) if name else None), {n: granted.get(n) is True for n in names}

    def ensure_catalog(self, name: str) -> int:
        """The id of the catalog named ``name``, created when missing; cached per client.

        Two processes creating the same new catalog at the same moment can make two: the
        products sync finds or creates its catalog under a PostgreSQL lock instead
        (``etl.sync.catalog``), with `find_catalog` and `create_catalog`.
        """
        if not name:
            raise ValueError("a catalog needs a name")
        with self._catalogs_lock:
            if name not in self._catalogs:
                self._catalogs[name] = self.find_catalog(name) or self.create_catalog(name)
            return self._catalogs[name]

    def find_catalog(self, name: str) -> int | None:
        """The id of the catalog named exactly ``name`` (``GET /catalogs/bags?searchBy=``), the
        lowest if there are several; ``None`` when there is none."""
        found: list[int] = []
        for offset in range(0, _BAGS_SCANNED, _BAGS_PAGE):
            response = self.http.request(
                "GET",
                "/catalogs/bags",
                params={"searchBy": name, "limit": _BAGS_PAGE, "offset": offset},
            )
            body = decode_body(response)
            bags = body.get("data") if isinstance(body, dict) else None
            page = bags if isinstance(bags, list) else []
            found += [
                _catalog_id(bag)
                for bag in page
                if isinstance(bag, dict) and bag.get("name") == name
            ]
            if len(page) < _BAGS_PAGE:
                break
        return min(found) if found else None

    def create_catalog(self, name: str) -> int:
        """Create a catalog (``POST /catalogs/bags``); its id."""
        if not name:
            raise ValueError("a catalog needs a name")
        response = self.http.request("POST", "/catalogs/bags", json={"name": name})
        body = decode_body(response)
        bag = body.get("data") if isinstance(body, dict) else None
        if not isinstance(bag, dict):
            raise FatalError(f"Synerise created catalog {name!r} but answered without its id")
        return _catalog_id(bag)

    # -- internals ----------------------------------------------------------------------------

    def _send_batches(
        self,
        path: str,
        items: Sequence[Mapping[str, Any]],
        missing: Missing | None = None,
    ) -> BatchResult:
        """Send ``items`` in batches; ``missing`` turns a 404 into the error to raise."""
        batches, unsendable = split_batches(items, self._batch_size(path))
        result = BatchResult(rejected=unsendable)
        for batch in batches:
            result.merge(self._send_batch(path, batch, missing))
        if result.rejected:
            log.info("%s: %d of %d items rejected", path, len(result.rejected), len(items))
        return result.sort()

    def _batch_size(self, path: str) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return MAX_BATCH_ITEMS if path in DOCUMENTED_BATCH_PATHS else DEFAULT_BATCH_SIZE

    def _send_batch(self, path: str, batch: Batch, missing: Missing | None) -> BatchResult:
        """Post one batch (bisecting content refusals), then resend, with backoff, the items a
        207 refused only for now; what is still refused after ``max_attempts`` is rejected."""
        policy = self.http.retry
        outcome = BatchResult()
        attempt = 1
        while True:
            part = bisect(batch, lambda piece: self._post_batch(path, piece, missing))
            outcome.accepted.extend(part.accepted)
            outcome.rejected.update(part.rejected)
            if not part.retry:
                return outcome
            if attempt >= policy.max_attempts:
                outcome.rejected.update(
                    (index, f"{text} (still refused after {attempt} attempts)")
                    for index, text in part.retry.items()
                )
                return outcome
            delay = policy.sleep_for(attempt)
            log.info(
                "%s: %d item(s) refused for now (207); resending them in %.2f s",
                path,
                len(part.retry),
                delay,
            )
            policy.sleep(delay)
            batch = batch.only(part.retry)
            attempt += 1

    def _post_batch(self, path: str, batch: Batch, missing: Missing | None) -> BatchResult:
        """One batch call; raises ``BatchRefused`` for a content refusal (``bisect`` splits)."""
        allow = SPLIT_STATUSES | {404} if missing is not None else SPLIT_STATUSES
        response = self.http.request("POST", path, data=batch.body, allow=allow)
        if response.status_code == 404 and missing is not None:
            raise missing(response)
        if response.status_code in SPLIT_STATUSES:
            raise BatchRefused(response.status_code, _refusal_text(response))
        if response.status_code != 207:
            return BatchResult(accepted=list(batch.indexes))
        return self._partial(batch, decode_body(response))

    def _partial(self, batch: Batch, body: Body) -> BatchResult:
        """A 207: reject what the errors name (or mark it for a retry when every error of the
        item is transient); when they do not account for every error, reject the items they do
        not name too (safer than assuming them accepted)."""
        found = self.partial_parser(body, len(batch.indexes))
        named = {batch.indexes[pos]: text for pos, text in found.by_position.items()}
        later = {batch.indexes[pos] for pos in found.transient if pos in found.by_position}
        rejected = {index: text for index, text in named.items() if index not in later}
        retry = {index: text for index, text in named.items() if index in later}
        if found.unattributed or not named:
            detail = "; ".join(found.unattributed) or "no error text"
            text = (
                "Synerise accepted the batch only in part (207) without naming which items "
                f"failed: {detail}"
            )
            rejected.update({index: text for index in batch.indexes if index not in named})
        accepted = [i for i in batch.indexes if i not in rejected and i not in retry]
        return BatchResult(accepted, rejected, retry)


def _refusal_text(response: requests.Response) -> str:
    return f"Synerise answered {response.status_code}: {describe_body(decode_body(response))}"


def _catalog_id(bag: Mapping[str, Any]) -> int:
    value = bag.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise FatalError(f"Synerise catalog {bag.get('name')!r} has no numeric id")
    return int(value)
