"""The competent peer: what a good engineer writes in an afternoon, for bench/peer_ratio.py.

No Celery, no database, no ledger: a thread pool (8 threads by default), one
``requests.Session`` per thread, the project's own ``schemas.mapping`` (the same validation
and payloads as the pipeline), batches of 100, and care where a real API needs it: listing
windows halved until they fit the API's caps, a client-side pacer for a known rate limit,
429s (``Retry-After``), 5xx and network errors retried, one new login on a 401.

* ``customers``: Master Data ``CL`` search on ``createdIn`` windows under the 10,000-document
  cap; each page of 100 is a task: map every document (``profile_from_customer``; a record the
  mapping refuses is counted as rejected) and post them to ``/v4/clients/batch``.
* ``orders``: OMS list orders on ``f_creationDate`` windows under 30 pages of 100, the pages
  listed in parallel; every Get order is a task; each 100 orders fetched are a task: look the
  buyers up in Master Data (one ``userId=a OR ...`` search per 50), map
  (``transaction_from_order``, ``guest_profile_from_order``), post the guest profiles to
  ``/v4/clients/batch``, then the transactions to ``/v4/transactions/batch``. (It holds the
  listed ids and the orders waiting for their batch in memory: fine for a benchmark.)

    python bench/peer.py customers|orders --vtex-url URL --app-key KEY --app-token TOKEN \\
        --synerise-url URL --api-key KEY [--from ISO] [--to ISO] [--threads 8] \\
        [--vtex-rate R] --json

Prints ``{"records", "sent", "rejected", "failed_batches", "seconds", "cpu_seconds",
"records_per_s", "cpu_us_per_record"}`` with --json: ``seconds`` and ``cpu_seconds`` (every
thread of this process) cover the sync, not the interpreter's start.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

if __package__ in (None, ""):  # run as a script: make ``schemas`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.naive import add_connection_args
from etl.errors import SkippableRecordError  # what the mapping raises
from schemas.mapping import (
    MappingConfig,
    guest_profile_from_order,
    profile_from_customer,
    transaction_from_order,
)

PAGE = 100
MD_CAP = 10_000
OMS_CAP = 30 * PAGE
BUYERS_PER_SEARCH = 50
ATTEMPTS = 8
RETRIED = frozenset({408, 429, 500, 502, 503, 504})
Pool = ThreadPoolExecutor


class Pacer:
    """Requests spaced ``1 / rate`` apart across every thread (no burst)."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate else 0.0
        self.next = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next)
            self.next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class Peer:
    """One sync's connections: per-thread sessions, the VTEX pacer, the Synerise token."""

    def __init__(self, args: argparse.Namespace):
        self.vtex = args.vtex_url.rstrip("/")
        self.synerise = args.synerise_url.rstrip("/")
        self.vtex_headers = {
            "X-VTEX-API-AppKey": args.app_key,
            "X-VTEX-API-AppToken": args.app_token,
        }
        self.api_key = args.api_key
        self.pacer = Pacer(args.vtex_rate)
        self.local = threading.local()
        self.token_lock = threading.Lock()
        self.token = ""
        self.mapping = MappingConfig()
        self.counts = {"records": 0, "sent": 0, "rejected": 0, "failed_batches": 0}
        self.counts_lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        return session

    def call(self, method: str, url: str, vtex: bool, **kwargs: Any) -> requests.Response:
        """Send with retries: 429 (``Retry-After``), 5xx and network errors back off."""
        for attempt in range(1, ATTEMPTS + 1):
            if vtex:
                self.pacer.wait()
            else:
                kwargs["headers"] = {"Authorization": f"Bearer {self.bearer()}"}
            try:
                response = self.session.request(method, url, timeout=(5, 30), **kwargs)
            except (requests.ConnectionError, requests.Timeout):
                response = None
            if response is not None and response.status_code == 401 and not vtex:
                self.bearer(renew=True)
                continue
            if response is not None and response.status_code not in RETRIED:
                response.raise_for_status()
                return response
            if attempt == ATTEMPTS:
                break
            after = response.headers.get("Retry-After") if response is not None else None
            time.sleep(float(after) if after and after.isdigit() else
                       random.uniform(0, min(30.0, 0.5 * 2**attempt)))  # fmt: skip
        raise RuntimeError(f"{method} {url}: still failing after {ATTEMPTS} attempts")

    def bearer(self, renew: bool = False) -> str:
        with self.token_lock:
            if renew or not self.token:
                answer = self.session.post(
                    f"{self.synerise}/uauth/v2/auth/login/profile",
                    json={"apiKey": self.api_key}, timeout=(5, 30),
                )  # fmt: skip
                answer.raise_for_status()
                self.token = str(answer.json()["token"])
            return self.token

    def tally(self, **counts: int) -> None:
        with self.counts_lock:
            for name, value in counts.items():
                self.counts[name] += value

    def post_batch(self, path: str, items: list[dict[str, Any]]) -> None:
        """One batch; a refused one (4xx) is counted, not retried."""
        if not items:
            return
        try:
            self.call("POST", f"{self.synerise}{path}", vtex=False, json=items)
        except requests.HTTPError:
            self.tally(failed_batches=1)
        else:
            self.tally(sent=len(items))

    # -- customers ----------------------------------------------------------------------------
    def md_search(self, params: dict[str, Any], start: int, end: int) -> tuple[list[Any], int]:
        response = self.call(
            "GET", f"{self.vtex}/api/dataentities/CL/search", vtex=True, params=params,
            headers={**self.vtex_headers, "REST-Range": f"resources={start}-{end}"},
        )  # fmt: skip
        total = response.headers.get("REST-Content-Range", "/0").rsplit("/", 1)[1]
        return response.json() or [], int(total)

    def customers_where(self, start: datetime, end: datetime) -> str:
        return f"createdIn between {iso(start)} AND {iso(end - timedelta(milliseconds=1))}"

    def customer_page(self, where: str, start: int, total: int) -> None:
        fields = ",".join(self.mapping.profile_source_fields)
        params = {"_where": where, "_fields": fields, "_sort": "createdIn ASC"}
        docs, _ = self.md_search(params, start, min(start + PAGE, total))
        profiles, rejected = [], 0
        for doc in docs:
            try:
                profiles.append(profile_from_customer(doc, self.mapping))
            except SkippableRecordError:
                rejected += 1
        self.tally(records=len(docs), rejected=rejected)
        self.post_batch("/v4/clients/batch", profiles)

    def sync_customers(self, pool: Pool, date_from: datetime, date_to: datetime) -> None:
        """A task per page of 100: search, map, post."""

        def count(start: datetime, end: datetime) -> int:
            where = self.customers_where(start, end)
            return self.md_search({"_where": where, "_fields": "id"}, 0, 1)[1]

        futures = [
            pool.submit(self.customer_page, self.customers_where(start, end), first, total)
            for start, end, total in windows(count, date_from, date_to, MD_CAP)
            for first in range(0, total, PAGE)
        ]
        for future in futures:
            future.result()

    # -- orders -------------------------------------------------------------------------------
    def list_orders(self, start: datetime, end: datetime, page: int, per_page: int) -> Any:
        last = end - timedelta(milliseconds=1)
        params = {
            "f_creationDate": f"creationDate:[{iso(start)} TO {iso(last)}]",
            "page": page, "per_page": per_page, "orderBy": "creationDate,asc",
        }  # fmt: skip
        return self.call(
            "GET", f"{self.vtex}/api/oms/pvt/orders", vtex=True, params=params,
            headers=self.vtex_headers,
        ).json()  # fmt: skip

    def get_order(self, order_id: str) -> dict[str, Any]:
        url = f"{self.vtex}/api/oms/pvt/orders/{order_id}"
        return dict(self.call("GET", url, vtex=True, headers=self.vtex_headers).json())

    def send_orders(self, orders: list[dict[str, Any]]) -> None:
        """Map a batch of orders (their buyers looked up first) and post it."""
        buyers = self.buyers(orders)
        transactions, guests, rejected = [], [], 0
        for order in orders:
            uid = (order.get("clientProfileData") or {}).get("userProfileId")
            buyer = buyers.get(uid) if uid else None
            try:
                transactions.append(transaction_from_order(order, buyer, self.mapping))
                guest = guest_profile_from_order(order, buyer, self.mapping)
            except SkippableRecordError:
                rejected += 1
                continue
            if guest is not None:
                guests.append(guest)
        self.tally(records=len(orders), rejected=rejected)
        self.post_batch("/v4/clients/batch", guests)
        self.post_batch("/v4/transactions/batch", transactions)

    def buyers(self, orders: list[dict[str, Any]]) -> dict[str, Any]:
        """Each buyer's ``CL`` document by ``userId``, one search per 50 buyers."""
        profiles = (order.get("clientProfileData") or {} for order in orders)
        ids = sorted({uid for profile in profiles if (uid := profile.get("userProfileId"))})
        fields = ",".join(self.mapping.order_customer_fields)
        found: dict[str, Any] = {}
        for first in range(0, len(ids), BUYERS_PER_SEARCH):
            where = " OR ".join(f"userId={uid}" for uid in ids[first : first + BUYERS_PER_SEARCH])
            params = {"_where": where, "_fields": fields, "_sort": "updatedIn DESC"}
            for doc in self.md_search(params, 0, PAGE)[0]:
                found.setdefault(doc.get("userId"), doc)
        return found

    def sync_orders(self, pool: Pool, date_from: datetime, date_to: datetime) -> None:
        """The listing pages in parallel, then every Get order through the pool; each 100
        orders fetched become a task that maps and posts them."""

        def count(start: datetime, end: datetime) -> int:
            return int(self.list_orders(start, end, 1, 1)["paging"]["total"])

        def listed(page: tuple[datetime, datetime, int]) -> list[str]:
            return [row["orderId"] for row in self.list_orders(*page, PAGE)["list"]]

        pages = [(start, end, page)
                 for start, end, total in windows(count, date_from, date_to, OMS_CAP)
                 for page in range(1, -(-total // PAGE) + 1)]  # fmt: skip
        ids = [order_id for page in pool.map(listed, pages) for order_id in page]
        sends, batch = [], []
        for order in pool.map(self.get_order, ids):
            batch.append(order)
            if len(batch) == PAGE:
                sends.append(pool.submit(self.send_orders, batch))
                batch = []
        if batch:
            sends.append(pool.submit(self.send_orders, batch))
        for future in sends:
            future.result()


def windows(
    count: Callable[[datetime, datetime], int], start: datetime, end: datetime, cap: int
) -> Iterator[tuple[datetime, datetime, int]]:
    """``[start, end)`` halved until each part holds at most ``cap`` records (empty ones left
    out)."""
    total = count(start, end)
    if total <= cap or end - start <= timedelta(milliseconds=2):
        if total:
            yield start, end, total
        return
    middle = start + (end - start) / 2
    yield from windows(count, start, middle, cap)
    yield from windows(count, middle, end, cap)


def iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Sync ``args.what`` between ``args.date_from`` and ``args.date_to``; counts and costs."""
    peer = Peer(args)
    wall, cpu = time.perf_counter(), time.process_time()
    sync = peer.sync_customers if args.what == "customers" else peer.sync_orders
    with ThreadPoolExecutor(args.threads) as pool:
        sync(pool, parse(args.date_from), parse(args.date_to))
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    records = peer.counts["records"]
    return {
        **peer.counts,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "records_per_s": round(records / seconds, 1) if seconds else 0.0,
        "cpu_us_per_record": round(cpu_seconds / records * 1e6, 1) if records else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A competent hand-written VTEX -> Synerise sync")
    parser.add_argument("what", choices=("customers", "orders"))
    add_connection_args(parser)
    parser.add_argument("--from", dest="date_from", default="2025-06-01T00:00:00Z")
    parser.add_argument("--to", dest="date_to", default="2026-06-01T00:00:00Z")
    parser.add_argument("--threads", type=int, default=8, help="Thread pool size.")
    parser.add_argument("--vtex-rate", type=float, default=None,
                        help="VTEX requests/s to keep under (the known limit).")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['records']} {args.what} in {result['seconds']:.1f} s "
            f"({result['records_per_s']:.0f}/s), {result['cpu_us_per_record']:.0f} µs CPU "
            f"each, {result['rejected']} rejected, {result['failed_batches']} batches refused"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
