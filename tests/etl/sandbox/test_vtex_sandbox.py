"""The VTEX emulator over real HTTP on loopback: auth, OMS, Master Data, hook, catalog, admin."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from aiohttp import web

from etl.config import Settings
from etl.sandbox import start_sandbox
from etl.sandbox.data import Dataset, parse_time
from etl.sandbox.server import SandboxServer
from etl.sandbox.vtex import VtexSandbox

START = datetime(2025, 3, 1, tzinfo=UTC)
END = START + timedelta(days=30)
NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)


class Clock:
    """A settable clock (seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Api:
    def __init__(self, url: str, sandbox: VtexSandbox) -> None:
        self.url = url
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.headers.update(
            {"X-VTEX-API-AppKey": sandbox.app_key, "X-VTEX-API-AppToken": sandbox.app_token}
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=10, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=10, **kwargs)

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.url + "/__sandbox__" + path, timeout=10, **kwargs)

    def orders(self, **params: Any) -> requests.Response:
        return self.get("/api/oms/pvt/orders", params=params)

    def search(self, params: dict[str, Any], rng: str | None = "resources=0-100") -> Any:
        headers = {"REST-Range": rng} if rng else {}
        return self.get("/api/dataentities/CL/search", params=params, headers=headers)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(customers=4000, orders=6000, seed=5, dirty_share=0.2, start=START, end=END)


@pytest.fixture(scope="module")
def clocks() -> tuple[Clock, Clock]:
    return Clock(1000.0), Clock(NOW.timestamp())


@pytest.fixture(scope="module")
def sandbox(dataset: Dataset, clocks: tuple[Clock, Clock]) -> VtexSandbox:
    return VtexSandbox(
        dataset,
        clock=clocks[0],
        wall_clock=clocks[1],
        scroll_ttl=60,
        hook_timeout=2.0,
        hook_retry_delays=(0.05, 0.05),
    )


@pytest.fixture(scope="module")
def server(sandbox: VtexSandbox) -> Iterator[SandboxServer]:
    with SandboxServer(sandbox.make_app()) as running:
        yield running


@pytest.fixture
def api(server: SandboxServer, sandbox: VtexSandbox) -> Iterator[Api]:
    sandbox.reset()
    sandbox.faults.clear()
    yield Api(server.url, sandbox)


def window(a: datetime, b: datetime, name: str = "creationDate") -> str:
    def fmt(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    return f"{name}:[{fmt(a)} TO {fmt(b)}]"


def ms(text: str) -> int:
    return parse_time(text)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


# -- auth -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/api/oms/pvt/orders", "oms"),
        ("/api/dataentities/CL/search", "md"),
        ("/api/catalog_system/pvt/sku/stockkeepingunitbyid/1001", "md"),
        ("/pricing/prices/1001", "md"),
    ],
)
def test_auth_missing_is_401_and_wrong_is_403(api: Api, path: str, shape: str) -> None:
    missing = requests.get(api.url + path, timeout=5)
    only_key = requests.get(
        api.url + path, headers={"X-VTEX-API-AppKey": api.sandbox.app_key}, timeout=5
    )
    wrong = requests.get(
        api.url + path,
        headers={"X-VTEX-API-AppKey": api.sandbox.app_key, "x-vtex-api-apptoken": "nope"},
        timeout=5,
    )
    assert (missing.status_code, only_key.status_code, wrong.status_code) == (401, 401, 403)
    for response in (missing, wrong):
        body = response.json()
        assert "message" in body["error"] if shape == "oms" else "Message" in body


def test_header_names_are_case_insensitive(api: Api) -> None:
    headers = {
        "x-vtex-api-appkey": api.sandbox.app_key,
        "X-VTEX-API-APPTOKEN": api.sandbox.app_token,
    }
    assert requests.get(api.url + "/pricing/prices/1001", headers=headers, timeout=5).ok


def test_admin_routes_need_no_auth(api: Api) -> None:
    assert api.admin("GET", "/stats").ok


def test_a_role_without_a_resource_is_403_there_only(dataset: Dataset) -> None:
    sandbox = VtexSandbox(dataset, denied_routes=("catalog.*", "oms.hook_config"))
    with SandboxServer(sandbox.make_app()) as running:
        api = Api(running.url, sandbox)
        denied = api.get("/api/catalog_system/pvt/products/GetProductAndSkuIds")
        assert denied.status_code == 403
        assert "catalog.product_and_sku_ids" in denied.json()["Message"]
        assert api.get("/api/orders/hook/config").status_code == 403
        assert api.orders(per_page=1).status_code == 200
        assert api.get("/pricing/prices/1001").status_code in (200, 404)


# -- list orders ---------------------------------------------------------------------------------


def test_list_orders_window_is_inclusive_and_paged(api: Api, dataset: Dataset) -> None:
    first, last = dataset.order(100), dataset.order(449)
    params = {
        "f_creationDate": f"creationDate:[{first['creationDate'][:23]}Z TO {last['creationDate'][:23]}Z]",  # noqa: E501
        "per_page": 100,
        "orderBy": "creationDate,asc",
    }
    seen: list[str] = []
    for page in range(1, 5):
        body = api.orders(page=page, **params).json()
        assert body["paging"] == {"total": 350, "pages": 4, "currentPage": page, "perPage": 100}
        seen += [row["orderId"] for row in body["list"]]
        assert all(row["items"] is None for row in body["list"])
    assert seen == [dataset.order(i)["orderId"] for i in range(100, 450)]
    beyond = api.orders(page=5, **params).json()
    assert beyond["list"] == [] and beyond["paging"]["total"] == 350


def test_list_orders_descending_and_by_order_id(api: Api, dataset: Dataset) -> None:
    params = {"f_creationDate": window(START, START + timedelta(hours=6)), "per_page": 100}
    down = [r["orderId"] for r in api.orders(orderBy="creationDate,desc", **params).json()["list"]]
    up = [r["orderId"] for r in api.orders(orderBy="orderId,asc", **params).json()["list"]]
    assert down == list(reversed(up)) and up == sorted(up)
    default = [r["orderId"] for r in api.orders(**params).json()["list"]]
    assert default == down


def test_list_orders_status_and_invoice_filters(api: Api, dataset: Dataset) -> None:
    a, b = START + timedelta(days=3), START + timedelta(days=6)
    docs = [dataset.order(i) for i in range(dataset.order_count)]
    in_window = [
        d
        for d in docs
        if ms(window(a, b)[14:38]) <= ms(d["creationDate"]) <= ms(window(a, b)[42:66])
    ]
    wanted = {"canceled", "handling"}
    expected = [d["orderId"] for d in in_window if d["status"] in wanted]
    body = api.orders(
        f_creationDate=window(a, b), f_status="canceled,handling", per_page=100,
        orderBy="creationDate,asc",
    ).json()  # fmt: skip
    assert body["paging"]["total"] == len(expected)
    assert [row["orderId"] for row in body["list"]] == expected[:100]
    invoiced = [
        d["orderId"] for d in docs
        if d["invoicedDate"] and ms(window(a, b)[14:38]) <= ms(d["invoicedDate"]) <= ms(window(a, b)[42:66])  # noqa: E501
    ]  # fmt: skip
    body = api.orders(f_invoicedDate=window(a, b, "invoicedDate"), per_page=100).json()
    assert body["paging"]["total"] == len(invoiced)
    assert {row["orderId"] for row in body["list"]} <= set(invoiced)


def test_list_orders_caps_and_bad_filters(api: Api) -> None:
    over = api.orders(page=31)
    assert over.status_code == 400 and "Max page exceed" in over.json()["error"]["message"]
    assert api.orders(page=30).status_code == 200
    assert api.orders(per_page=101).status_code == 400
    assert api.orders(per_page=100).status_code == 200
    assert api.orders(page="x").status_code == 400
    assert api.orders(f_creationDate="creationDate:2025-01-01").status_code == 400
    assert api.orders(f_creationDate=window(START, END, "invoicedDate")).status_code == 400
    assert api.orders(q="someone").status_code == 400
    assert api.orders(orderBy="totalValue,desc").status_code == 400
    default = api.orders().json()
    assert default["paging"]["perPage"] == 15 and len(default["list"]) == 15


def test_list_rows_agree_with_get_order(api: Api) -> None:
    rows = api.orders(per_page=20, f_creationDate=window(START, END)).json()["list"]
    for row in rows:
        order = api.get(f"/api/oms/pvt/orders/{row['orderId']}").json()
        assert row["totalValue"] == order["value"]
        assert row["status"] == order["status"]
        assert row["creationDate"] == order["creationDate"]
        assert row["totalItems"] == sum(item["quantity"] for item in order["items"])


# -- get order ------------------------------------------------------------------------------------


def test_get_order(api: Api, dataset: Dataset) -> None:
    order = dataset.order(77)
    assert api.get(f"/api/oms/pvt/orders/{order['orderId']}").json() == order
    assert api.get(f"/api/oms/pvt/orders/seq{order['sequence']}").json() == order
    missing = api.get("/api/oms/pvt/orders/v99999999sand-01")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Order not found"


# -- Master Data search ---------------------------------------------------------------------------


def brute(dataset: Dataset, keep: Callable[[dict[str, Any]], bool], sort: str) -> list[str]:
    docs = [dataset.customer(i) for i in range(dataset.customer_count)]
    chosen = [d for d in docs if keep(d)]
    return [d["id"] for d in sorted(chosen, key=lambda d: ms(d[sort]))]


def test_search_window_sort_and_range(api: Api, dataset: Dataset) -> None:
    where = "createdIn between 2025-03-04T00:00:00.000Z AND 2025-03-05T23:59:59.999Z"
    lo, hi = ms("2025-03-04"), ms("2025-03-05T23:59:59.999Z")
    expected = brute(dataset, lambda d: lo <= ms(d["createdIn"]) <= hi, "createdIn")
    got: list[str] = []
    for start in range(0, len(expected) + 50, 50):
        response = api.search(
            {"_where": where, "_fields": "id,createdIn", "_sort": "createdIn ASC"},
            f"resources={start}-{start + 50}",
        )
        rows = response.json()
        end = start + len(rows)
        assert response.headers["REST-Content-Range"] == f"resources {start}-{end}/{len(expected)}"
        got += [row["id"] for row in rows]
    assert got == expected
    desc = api.search(
        {"_where": where, "_fields": "id", "_sort": "createdIn DESC"}, "resources=0-10"
    )
    assert [row["id"] for row in desc.json()] == list(reversed(expected))[:10]


def test_search_on_updated_in(api: Api, dataset: Dataset) -> None:
    lo, hi = ms("2025-03-10T06:00:00Z"), ms("2025-03-11T06:00:00Z")
    expected = brute(dataset, lambda d: lo <= ms(d["updatedIn"]) <= hi, "updatedIn")
    where = "updatedIn >= 2025-03-10T06:00:00Z AND updatedIn <= 2025-03-11T06:00:00Z"
    got = []
    for start in range(0, len(expected), 100):
        rows = api.search(
            {"_where": where, "_fields": "id,updatedIn", "_sort": "updatedIn ASC"},
            f"resources={start}-{start + 100}",
        ).json()
        got += [row["id"] for row in rows]
    assert got == expected


def test_search_simple_filters_or_and_fields(api: Api, dataset: Dataset) -> None:
    a, b = dataset.customer(10), dataset.customer(20)
    by_user = api.search({"userId": a["userId"], "_fields": "id,email", "_sort": "updatedIn DESC"})
    assert by_user.json() == [{"id": a["id"], "email": a["email"]}]
    either = api.search(
        {"_where": f"(userId={a['userId']} OR email={b['email']})", "_fields": "id"}
    )
    assert sorted(row["id"] for row in either.json()) == sorted([a["id"], b["id"]])
    everything = api.search({"id": a["id"], "_fields": "_all"}).json()
    assert everything == [a]
    default = api.search({"id": a["id"]}).json()
    assert default == [{k: a[k] for k in ("id", "accountId", "accountName", "dataEntityId")}]
    nothing = api.search({"email": "nobody.1@example.com", "_fields": "id"})
    assert nothing.json() == [] and nothing.headers["REST-Content-Range"] == "resources 0-0/0"


def test_search_residual_conditions(api: Api, dataset: Dataset) -> None:
    expected = brute(
        dataset,
        lambda d: d["email"] is None and ms(d["createdIn"]) < ms("2025-03-10"),
        "createdIn",
    )
    rows = api.search(
        {"_where": "email is null AND createdIn<2025-03-10", "_fields": "id", "_sort": "createdIn"}
    ).json()
    assert [row["id"] for row in rows] == expected[:100] and expected


def test_date_only_literals_cover_the_whole_day(api: Api, dataset: Dataset) -> None:
    day = [
        d for d in brute(dataset, lambda d: d["createdIn"].startswith("2025-03-07"), "createdIn")
    ]
    same = api.search({"_where": "createdIn=2025-03-07", "_fields": "id"}).json()
    assert [row["id"] for row in same] == day[:100]
    after = api.search({"_where": "createdIn>2025-03-07", "_fields": "createdIn"}, "resources=0-1")
    assert after.json()[0]["createdIn"] >= "2025-03-08"


def test_search_caps(api: Api) -> None:
    assert api.search({"_fields": "id"}, "resources=0-101").status_code == 400
    cap = api.search({"_fields": "id"}, "resources=9950-10050")
    assert cap.status_code == 400 and "10000" in cap.json()["Message"]
    assert api.search({"_fields": "id"}, "resources=9900-10000").status_code == 200
    assert api.search({"_fields": "id"}, "items=0-10").status_code == 400
    default = api.search({"_fields": "id"}, rng=None)
    assert len(default.json()) == 15
    assert default.headers["REST-Content-Range"] == "resources 0-15/4000"
    assert api.search({"_where": "createdIn between"}).status_code == 400
    assert api.search({"_where": "createdIn > yesterday"}).status_code == 400
    assert api.search({"_where": "NOT (updatedIn<>soon)"}).status_code == 400
    assert api.search({"_sort": "createdIn sideways"}).status_code == 400
    assert api.search({"_sort": "email"}).status_code == 200
    assert api.get("/api/dataentities/XX/search").status_code == 404


# -- scroll ---------------------------------------------------------------------------------------


def scroll_all(api: Api, params: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    first = api.get("/api/dataentities/CL/scroll", params=params)
    assert first.status_code == 200, first.text
    token = first.headers["X-VTEX-MD-TOKEN"]
    total = int(first.headers["REST-Content-Total"])
    rows = first.json()
    while True:
        page = api.get("/api/dataentities/CL/scroll", params={"_token": token}).json()
        if not page:
            break
        rows += page
    assert len(rows) == total
    return rows, token


def test_scroll_reads_everything_in_order(api: Api, dataset: Dataset) -> None:
    rows, _ = scroll_all(
        api,
        {
            "_where": "updatedIn>=2025-03-20",
            "_fields": "id",
            "_size": 400,
            "_sort": "updatedIn ASC",
        },
    )
    expected = brute(dataset, lambda d: ms(d["updatedIn"]) >= ms("2025-03-20"), "updatedIn")
    assert [row["id"] for row in rows] == expected
    assert api.get("/api/dataentities/CL/scroll", params={"_size": 1001}).status_code == 400


def test_scroll_token_expires_when_idle(api: Api, clocks: tuple[Clock, Clock]) -> None:
    first = api.get("/api/dataentities/CL/scroll", params={"_fields": "id", "_size": 10})
    token = first.headers["X-VTEX-MD-TOKEN"]
    clocks[0].now += 59
    assert api.get("/api/dataentities/CL/scroll", params={"_token": token}).status_code == 200
    clocks[0].now += 61
    expired = api.get("/api/dataentities/CL/scroll", params={"_token": token})
    assert expired.status_code == 400
    assert expired.json() == {"Message": "Operation not found for this token"}


def test_scroll_limit_is_ten_simultaneous(api: Api) -> None:
    tokens = []
    for _ in range(10):
        response = api.get("/api/dataentities/CL/scroll", params={"_fields": "id", "_size": 1000})
        assert response.status_code == 200
        tokens.append(response.headers["X-VTEX-MD-TOKEN"])
    refused = api.get("/api/dataentities/CL/scroll", params={"_fields": "id"})
    assert refused.status_code == 400
    assert refused.json() == {"Message": "Maximum simultaneous scrolls rate exceeded (10)"}
    token = tokens[0]
    while api.get("/api/dataentities/CL/scroll", params={"_token": token}).json():
        pass
    assert api.get("/api/dataentities/CL/scroll", params={"_fields": "id"}).status_code == 200
    assert api.admin("GET", "/stats").json()["scrolls"]["open"] == 10


# -- documents -------------------------------------------------------------------------------------


def test_document_get_patch_and_search_by_update(api: Api, dataset: Dataset) -> None:
    doc = dataset.customer(321)
    path = f"/api/dataentities/CL/documents/{doc['id']}"
    assert api.get(path, params={"_fields": "_all"}).json() == doc
    assert api.get(path, params={"_fields": "email,firstName"}).json() == {
        "email": doc["email"], "firstName": doc["firstName"],
    }  # fmt: skip
    patched = api.request("PATCH", path, json={"isNewsletterOptIn": False, "createdIn": "x"})
    assert patched.status_code == 204 and patched.content == b""
    after = api.get(path, params={"_fields": "_all"}).json()
    assert after["isNewsletterOptIn"] is False and after["createdIn"] == doc["createdIn"]
    assert ms(after["updatedIn"]) == int(NOW.timestamp() * 1000)
    recent = api.search({"_where": "updatedIn>=2026-01-01", "_fields": "id"}).json()
    assert recent == [{"id": doc["id"]}]
    old_window = f"updatedIn between {doc['updatedIn']} AND {doc['updatedIn']}"
    assert {"id": doc["id"]} not in api.search({"_where": old_window, "_fields": "id"}).json()
    assert api.request("PATCH", path, data="not json").status_code == 400
    missing = "/api/dataentities/CL/documents/00000000-0000-4000-8000-000000000000"
    assert api.get(missing).status_code == 404
    assert api.request("PATCH", missing, json={"a": 1}).status_code == 404


def test_upsert_create_unchanged_update_delete(api: Api) -> None:
    created = api.request(
        "PATCH", "/api/dataentities/CL/documents", json={"email": "x.new@example.com"}
    )
    assert created.status_code == 201
    doc_id = created.json()["documentId"]
    assert created.json()["id"] == f"CL-{doc_id}"
    same = api.request(
        "PATCH", "/api/dataentities/CL/documents", json={"id": doc_id, "email": "x.new@example.com"}
    )
    assert same.status_code == 304
    changed = api.request(
        "PATCH", "/api/dataentities/CL/documents", json={"id": doc_id, "firstName": "Ana"}
    )
    assert changed.status_code == 201
    found = api.search({"email": "x.new@example.com", "_fields": "id,firstName"}).json()
    assert found == [{"id": doc_id, "firstName": "Ana"}]
    path = f"/api/dataentities/CL/documents/{doc_id}"
    assert api.request("DELETE", path).status_code == 204
    assert api.get(path).status_code == 404
    assert api.request("DELETE", path).status_code == 404


# -- hook -----------------------------------------------------------------------------------------


class Receiver:
    """A local endpoint that records what it gets and answers ``statuses`` in turn, then 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], Any]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.server = SandboxServer(app).start()
        self.url = self.server.url + "/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self.lock:
            self.received.append((dict(request.headers), body))
            status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({}, status=status)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.stop()


def configure(api: Api, url: str, statuses: list[str] | None = None) -> requests.Response:
    spec: dict[str, Any] = {"type": "FromWorkflow"}
    if statuses is not None:
        spec["status"] = statuses
    body = {"filter": spec, "hook": {"url": url, "headers": {"x-hook-secret": "s3cret"}}}
    return api.request("POST", "/api/orders/hook/config", json=body)


def test_hook_ping_and_notifications(api: Api, dataset: Dataset, receiver: Receiver) -> None:
    assert api.get("/api/orders/hook/config").status_code == 404
    assert configure(api, receiver.url, ["canceled"]).status_code == 200
    headers, ping = receiver.received[0]
    assert ping == {"hookConfig": "ping"} and headers["x-hook-secret"] == "s3cret"
    assert api.get("/api/orders/hook/config").json()["hook"]["url"] == receiver.url
    order = dataset.order(12)
    changed = api.admin("POST", f"/orders/{order['orderId']}/status", json={"status": "canceled"})
    assert changed.json()["hookNotified"] is True
    wait_for(lambda: len(receiver.received) == 2)
    headers, note = receiver.received[1]
    assert headers["x-hook-secret"] == "s3cret"
    assert note["OrderId"] == order["orderId"] and note["State"] == "canceled"
    assert note["LastState"] == order["status"] and note["LastChange"] == order["lastChange"]
    assert note["CurrentChange"] == changed.json()["lastChange"]
    assert note["Origin"] == {"Account": "sandbox", "Key": api.sandbox.app_key}
    assert note["Domain"] == "Marketplace"
    ignored = api.admin("POST", f"/orders/{order['orderId']}/status", json={"status": "invoiced"})
    assert ignored.json()["hookNotified"] is False
    assert api.get(f"/api/oms/pvt/orders/{order['orderId']}").json()["status"] == "invoiced"
    assert api.request("DELETE", "/api/orders/hook/config").status_code == 200
    assert api.request("DELETE", "/api/orders/hook/config").status_code == 404


def test_hook_refused_when_ping_fails(api: Api, receiver: Receiver) -> None:
    receiver.statuses = [500]
    refused = configure(api, receiver.url)
    assert refused.status_code == 400 and "ping" in refused.json()["error"]["message"]
    assert api.get("/api/orders/hook/config").status_code == 404
    unreachable = configure(api, "http://127.0.0.1:9/hook")
    assert unreachable.status_code == 400
    assert configure(api, "ftp://example.com").status_code == 400
    orders_filter = api.request(
        "POST",
        "/api/orders/hook/config",
        json={
            "filter": {"type": "FromOrders", "expression": "value > 1"},
            "hook": {"url": receiver.url},
        },
    )
    assert orders_filter.status_code == 400


def test_hook_notification_is_retried(api: Api, dataset: Dataset, receiver: Receiver) -> None:
    assert configure(api, receiver.url).status_code == 200
    receiver.statuses = [503, 500]
    order = dataset.order(13)
    api.admin("POST", f"/orders/{order['orderId']}/status", json={"status": "handling"})
    hook = lambda: api.admin("GET", "/vtex/hook").json()  # noqa: E731
    wait_for(lambda: hook()["deliveries"] and "delivered" in hook()["deliveries"][0])
    delivery = hook()["deliveries"][0]
    assert delivery["delivered"] is True and delivery["attempts"] == 3
    assert [body["State"] for _, body in receiver.received[1:]] == ["handling"] * 3


def test_status_change_can_remove_items(api: Api, dataset: Dataset) -> None:
    order = dataset.order(40)
    sku = order["items"][0]["id"]
    answer = api.admin(
        "POST",
        f"/orders/{order['orderId']}/status",
        json={"status": "canceled", "removeItems": [sku]},
    )
    assert answer.status_code == 200
    now = api.get(f"/api/oms/pvt/orders/{order['orderId']}").json()
    assert now["status"] == "canceled"
    assert all(item["quantity"] == 0 for item in now["items"] if item["id"] == sku)
    assert now["value"] == sum(t["value"] for t in now["totals"])
    bad = api.admin(
        "POST", f"/orders/{order['orderId']}/status", json={"status": "x", "removeItems": ["0"]}
    )
    assert bad.status_code == 400
    assert api.admin("POST", "/orders/nope/status", json={"status": "canceled"}).status_code == 404
    assert api.admin("POST", f"/orders/{order['orderId']}/status", json={}).status_code == 400


# -- catalog and prices ----------------------------------------------------------------------------


def test_catalog_routes(api: Api, dataset: Dataset) -> None:
    path = "/api/catalog_system/pvt/products/GetProductAndSkuIds"
    body = api.get(path, params={"_from": 1, "_to": 250}).json()
    assert body["range"]["total"] == 60
    assert body["data"] == {str(p): dataset.product_sku_ids(p) for p in range(1, 61)}
    page = api.get(path, params={"_from": 11, "_to": 20}).json()
    assert list(page["data"]) == [str(p) for p in range(11, 21)]
    category = dataset.sku(1001)["ProductCategoryIds"].strip("/").split("/")[-1]  # type: ignore[index]
    filtered = api.get(path, params={"categoryId": category, "_from": 1, "_to": 50}).json()
    assert "1" in filtered["data"] and filtered["range"]["total"] == len(filtered["data"])
    assert api.get(path, params={"_from": 1, "_to": 251}).status_code == 400
    assert api.get(path, params={"_from": 0, "_to": 5}).status_code == 400
    priced = next(s for p in range(1, 61) for s in dataset.product_sku_ids(p) if dataset.price(s))
    sku = api.get(f"/api/catalog_system/pvt/sku/stockkeepingunitbyid/{priced}")
    assert sku.json() == dataset.sku(priced)
    assert api.get("/api/catalog_system/pvt/sku/stockkeepingunitbyid/999").status_code == 404
    assert api.get("/api/catalog_system/pvt/sku/stockkeepingunitbyid/abc").status_code == 400
    assert api.get(f"/pricing/prices/{priced}").json() == dataset.price(priced)
    assert api.get(f"/api/pricing/prices/{priced}").json() == dataset.price(priced)
    assert api.get("/pricing/prices/999").status_code == 404
    channel = api.get("/api/catalog_system/pub/saleschannel/1").json()
    assert channel["Id"] == 1 and channel["CurrencyCode"] == "BRL"
    assert api.get("/api/catalog_system/pub/saleschannel/9").status_code == 404


def test_the_catalog_has_the_traits_a_sync_must_handle() -> None:
    dataset = Dataset(customers=10, orders=10, seed=3, products=400)
    skus = [s for p in dataset.product_ids() for s in dataset.product_sku_ids(p)]
    traits = {s: dataset.catalog_traits(s) for s in skus}
    for trait in ("product_inactive", "sku_inactive", "no_price", "no_image"):
        assert 0 < sum(t[trait] for t in traits.values()) < len(skus) / 5, trait
    for sku_id, trait in traits.items():
        doc, price = dataset.sku(sku_id), dataset.price(sku_id)
        assert doc is not None
        assert doc["IsActive"] is not trait["sku_inactive"]
        assert doc["IsProductActive"] is not trait["product_inactive"]
        assert (price is None) is trait["no_price"]
        assert (doc["Images"] == [] and doc["ImageUrl"] == "") is trait["no_image"]
    assert any(len(dataset.product_sku_ids(p)) > 1 for p in dataset.product_ids())
    tally = dataset.expected()["catalog"]
    assert tally["products"] == 400 and tally["skus"] == len(skus)
    assert tally["deleted"] == sum(
        t["sku_inactive"] or t["product_inactive"] for t in traits.values()
    )
    assert tally["without_price"] == sum(t["no_price"] for t in traits.values())
    with pytest.raises(ValueError):
        dataset.catalog_traits(999)


def test_catalog_changes_at_run_time(api: Api, dataset: Dataset) -> None:
    priced = next(s for p in range(1, 61) for s in dataset.product_sku_ids(p) if dataset.price(s))
    unpriced = next(
        s for p in range(1, 61) for s in dataset.product_sku_ids(p) if not dataset.price(s)
    )
    changed = api.admin("PUT", f"/catalog/prices/{priced}", json={"basePrice": 12345})
    assert changed.status_code == 200 and changed.json()["basePrice"] == 12345
    assert api.get(f"/pricing/prices/{priced}").json()["basePrice"] == 12345
    assert api.admin("PUT", f"/catalog/prices/{unpriced}", json={"listPrice": 5}).status_code == 400
    created = api.admin("PUT", f"/catalog/prices/{unpriced}", json={"basePrice": 7}).json()
    assert created["listPrice"] == 7 and api.get(f"/pricing/prices/{unpriced}").ok
    for bad in ({"basePrice": 9.5}, {"basePrice": -1}, {"nope": 1}, {"fixedPrices": [{}]}):
        assert api.admin("PUT", f"/catalog/prices/{priced}", json=bad).status_code == 400, bad
    assert api.admin("PUT", "/catalog/prices/999", json={"basePrice": 1}).status_code == 404
    assert api.admin("DELETE", f"/catalog/prices/{priced}").status_code == 204
    assert api.get(f"/pricing/prices/{priced}").status_code == 404

    off = api.admin("PATCH", f"/catalog/skus/{priced}", json={"IsActive": False})
    assert off.status_code == 200 and off.json()["IsActive"] is False
    sku_path = f"/api/catalog_system/pvt/sku/stockkeepingunitbyid/{priced}"
    assert api.get(sku_path).json()["IsActive"] is False
    assert api.admin("PATCH", f"/catalog/skus/{priced}", json={"x": 1}).status_code == 400
    assert api.admin("PATCH", "/catalog/skus/999", json={"IsActive": True}).status_code == 404

    product = dataset.product_ids()[1]
    assert api.admin("DELETE", f"/catalog/products/{product}").status_code == 204
    assert api.admin("DELETE", f"/catalog/products/{product}").status_code == 404
    listing = api.get(
        "/api/catalog_system/pvt/products/GetProductAndSkuIds", params={"_from": 1, "_to": 250}
    ).json()
    assert str(product) not in listing["data"] and listing["range"]["total"] == 59
    for sku_id in dataset.product_sku_ids(product):
        assert (
            api.get(f"/api/catalog_system/pvt/sku/stockkeepingunitbyid/{sku_id}").status_code == 404
        )
        assert api.get(f"/pricing/prices/{sku_id}").status_code == 404
    stats = api.admin("GET", "/stats").json()
    assert stats["catalog_changes"] == {"prices": 3, "skus": 1, "deleted_products": 1}
    assert stats["data"]["products"] == 59

    assert api.admin("POST", "/reset").ok
    assert api.get(sku_path).json() == dataset.sku(priced)
    assert api.get(f"/pricing/prices/{priced}").json() == dataset.price(priced)
    assert api.admin("GET", "/stats").json()["data"]["products"] == 60


# -- admin, stats, faults --------------------------------------------------------------------------


def test_admin_customers_and_reset(api: Api, dataset: Dataset) -> None:
    created = api.admin("POST", "/customers", json={"email": "made@example.com", "userId": "u1"})
    assert created.status_code == 201
    doc_id = created.json()["id"]
    assert api.search({"userId": "u1", "_fields": "id"}).json() == [{"id": doc_id}]
    patched = api.admin("PATCH", f"/customers/{doc_id}", json={"firstName": "Zé"})
    assert patched.json()["firstName"] == "Zé"
    victim = dataset.customer(3)["id"]
    assert api.admin("DELETE", f"/customers/{victim}").status_code == 204
    assert api.get(f"/api/dataentities/CL/documents/{victim}").status_code == 404
    assert api.admin("DELETE", f"/customers/{victim}").status_code == 404
    assert api.admin("PATCH", "/customers/nope", json={}).status_code == 404
    assert api.admin("POST", "/reset").ok
    assert api.get(f"/api/dataentities/CL/documents/{victim}").status_code == 200
    assert api.search({"userId": "u1"}).json() == []


def test_stats_and_expected(api: Api, dataset: Dataset) -> None:
    api.get("/pricing/prices/1001")
    api.get("/pricing/prices/1001")
    api.orders()
    requests.get(api.url + "/api/oms/pvt/orders", timeout=5)
    stats = api.admin("GET", "/stats").json()
    assert stats["requests"] == {"pricing.price": 2, "oms.list_orders": 2}
    assert stats["responses"] == {"200": 3, "401": 1}
    assert stats["data"] == {"customers": 4000, "orders": 6000, "products": 60}
    assert api.admin("GET", "/vtex/expected").json() == dataset.expected()


def test_fault_injection_uses_vtex_bodies(api: Api) -> None:
    api.admin("POST", "/faults", json={"route": "oms.get_order", "error_rate": 1})
    failed = api.get("/api/oms/pvt/orders/whatever")
    assert failed.status_code in (500, 502, 503)
    assert "message" in failed.json()["error"]
    api.admin("POST", "/faults", json={"route": "md.*", "rate_limit": 1, "burst": 1})
    statuses = [api.search({"_fields": "id"}).status_code for _ in range(3)]
    assert statuses[0] == 200 and 429 in statuses
    limited = api.search({"_fields": "id"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert "Message" in limited.json()
    assert api.admin("GET", "/stats").json()["rate_limited"] >= 2


# -- start_sandbox ---------------------------------------------------------------------------------


def test_start_sandbox_env_configures_the_etl() -> None:
    with start_sandbox(
        customers=50, orders=50, seed=2, faults=[("oms.*", {"latency_ms": 1})]
    ) as running:
        env = running.env()
        settings = Settings.from_env(env=env)
        assert settings.vtex_base_url == running.vtex_url
        assert settings.synerise_api_host == running.synerise_url
        headers = {
            "X-VTEX-API-AppKey": env["VTEX_APP_KEY"],
            "X-VTEX-API-AppToken": env["VTEX_APP_TOKEN"],
        }
        assert requests.get(
            env["VTEX_BASE_URL"] + "/api/oms/pvt/orders", headers=headers, timeout=5
        ).ok
        login = requests.post(
            env["SYNERISE_API_HOST"] + "/uauth/v2/auth/login/profile",
            json={"apiKey": env["SYNERISE_API_KEY"]},
            timeout=5,
        )
        assert login.ok
        assert running.vtex.faults.rules() == [{"route": "oms.*", "latency_ms": 1.0}]
    with pytest.raises(ValueError):
        start_sandbox(customers=1, orders=1, faults=[("*", {"latency_ms": -1})])
