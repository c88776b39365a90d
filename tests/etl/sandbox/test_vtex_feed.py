"""The emulated Orders Feed v3 over real HTTP: configuration, reads, visibility, commits, expiry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from etl.sandbox.data import Dataset
from etl.sandbox.server import SandboxServer
from etl.sandbox.vtex import VtexSandbox
from etl.sandbox.vtex.state import Hook

RETENTION = 345_600


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Feed:
    def __init__(self, url: str, sandbox: VtexSandbox, clock: Clock) -> None:
        self.url, self.sandbox, self.clock = url, sandbox, clock
        self.session = requests.Session()
        self.session.headers.update(
            {"X-VTEX-API-AppKey": sandbox.app_key, "X-VTEX-API-AppToken": sandbox.app_token}
        )

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=10, **kwargs)

    def configure(
        self, statuses: list[str] | None = None, visibility: int = 240
    ) -> requests.Response:
        spec: dict[str, Any] = {"type": "FromWorkflow"}
        if statuses is not None:
            spec["status"] = statuses
        queue = {
            "visibilityTimeoutInSeconds": visibility,
            "MessageRetentionPeriodInSeconds": RETENTION,
        }
        return self.call("POST", "/api/orders/feed/config", json={"filter": spec, "queue": queue})

    def read(self, maxlot: int | str = 10) -> requests.Response:
        return self.call("GET", "/api/orders/feed", params={"maxlot": maxlot})

    def commit(self, handles: list[str]) -> requests.Response:
        return self.call("POST", "/api/orders/feed", json={"handles": handles})

    def change(self, index: int, status: str) -> dict[str, Any]:
        order_id = self.sandbox.source.order(index)["orderId"]
        answer = requests.post(
            f"{self.url}/__sandbox__/orders/{order_id}/status", json={"status": status}, timeout=10
        )
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, VtexSandbox, Clock]]:
    clock = Clock()
    sandbox = VtexSandbox(Dataset(customers=50, orders=200, seed=3), clock=clock, seed=1)
    with SandboxServer(sandbox.make_app()) as server:
        yield server.url, sandbox, clock


@pytest.fixture
def feed(served: tuple[str, VtexSandbox, Clock]) -> Feed:
    url, sandbox, clock = served
    sandbox.reset()
    sandbox.feed.duplicate_rate = 0.0
    return Feed(url, sandbox, clock)


def test_without_a_configuration_the_feed_answers_404(feed: Feed) -> None:
    assert feed.call("GET", "/api/orders/feed/config").status_code == 404
    assert feed.read().status_code == 404
    assert feed.commit(["x"]).status_code == 404
    assert feed.call("DELETE", "/api/orders/feed/config").status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"filter": {"type": "FromWorkflow"}}, 400),  # no queue
        ({"filter": {"type": "Whatever"}, "queue": {}}, 400),
        ({"filter": {"type": "FromOrders", "expression": "value > 1"}, "queue": {}}, 400),
        ({"filter": {"type": "FromWorkflow", "status": ["x"], "expression": "y"}, "queue": {}},
         409),
        ({"filter": {"type": "FromWorkflow", "status": "invoiced"}, "queue": {}}, 400),
        (
            {"filter": {"type": "FromWorkflow"},
             "queue": {"visibilityTimeoutInSeconds": 240, "MessageRetentionPeriodInSeconds": 60}},
            400,
        ),  # retention under 4 days
        (
            {"filter": {"type": "FromWorkflow"},
             "queue": {"visibilityTimeoutInSeconds": 0,
                       "MessageRetentionPeriodInSeconds": RETENTION}},
            400,
        ),
    ],
)  # fmt: skip
def test_a_bad_configuration_is_refused_with_a_reason(
    feed: Feed, body: dict[str, Any], status: int
) -> None:
    answer = feed.call("POST", "/api/orders/feed/config", json=body)
    assert answer.status_code == status
    assert answer.json()["error"]["message"]
    assert feed.call("GET", "/api/orders/feed/config").status_code == 404


def test_events_match_the_filter_and_carry_the_change(feed: Feed) -> None:
    assert feed.configure(["invoiced", "canceled"]).status_code == 200
    changed = feed.change(5, "invoiced")
    feed.change(6, "handling")  # not in the filter
    config = feed.call("GET", "/api/orders/feed/config").json()
    assert config["quantity"] == 1 and config["queue"]["visibilityTimeoutInSeconds"] == 240
    [event] = feed.read().json()
    assert event["orderId"] == changed["orderId"] and event["state"] == "invoiced"
    assert event["lastState"] == changed["lastState"]
    assert event["currentChange"] == changed["lastChange"]
    assert set(event) == {
        "eventId", "handle", "domain", "state", "lastState", "orderId", "lastChange",
        "currentChange",
    }  # fmt: skip


def test_read_hides_events_until_the_visibility_timeout_then_redelivers(feed: Feed) -> None:
    assert feed.configure(visibility=60).status_code == 200
    for index in range(12):
        feed.change(index, "invoiced")
    first = feed.read(10).json()
    second = feed.read(10).json()
    assert len(first) == 10 and len(second) == 2
    assert feed.read(10).json() == []
    feed.clock.now += 61
    again = feed.read(10).json()
    assert {e["eventId"] for e in again} == {e["eventId"] for e in first}
    assert {e["handle"] for e in again}.isdisjoint(e["handle"] for e in first)  # new handles


def test_commit_removes_events_and_a_stale_handle_does_not(feed: Feed) -> None:
    assert feed.configure(visibility=60).status_code == 200
    feed.change(20, "invoiced")
    [old] = feed.read().json()
    feed.clock.now += 61
    [new] = feed.read().json()
    assert feed.commit([old["handle"]]).status_code == 200  # stale: the event stays
    assert feed.sandbox.stats()["feed"]["queued"] == 1
    assert feed.commit([new["handle"]]).status_code == 200
    feed.clock.now += 61
    assert feed.read().json() == []
    stats = feed.sandbox.stats()["feed"]
    assert stats["committed"] == 1 and stats["stale_commits"] == 1 and stats["redelivered"] == 1


@pytest.mark.parametrize("maxlot", [0, 11, "ten", "-1"])
def test_maxlot_outside_1_to_10_is_refused(feed: Feed, maxlot: int | str) -> None:
    assert feed.configure().status_code == 200
    assert feed.read(maxlot).status_code == 400


def test_events_expire_after_retention_and_a_silent_feed_loses_its_configuration(
    feed: Feed,
) -> None:
    assert feed.configure().status_code == 200
    feed.change(30, "invoiced")
    feed.clock.now += RETENTION - 10
    feed.change(31, "invoiced")
    feed.clock.now += 20
    [event] = feed.read().json()  # the first one expired
    assert event["orderId"] == feed.sandbox.source.order(31)["orderId"]
    feed.clock.now += RETENTION
    assert feed.call("GET", "/api/orders/feed/config").status_code == 404


def test_duplicates_are_published_at_the_configured_rate(feed: Feed) -> None:
    feed.sandbox.feed.duplicate_rate = 1.0
    assert feed.configure().status_code == 200
    feed.change(40, "invoiced")
    events = feed.read().json()
    assert len(events) == 2 and events[0]["orderId"] == events[1]["orderId"]
    assert events[0]["eventId"] != events[1]["eventId"]


def test_a_missed_hook_delivery_is_still_in_the_feed() -> None:
    clock = Clock()
    sandbox = VtexSandbox(Dataset(customers=10, orders=30, seed=3), clock=clock, hook_miss_rate=1.0)
    with SandboxServer(sandbox.make_app()) as server:
        feed = Feed(server.url, sandbox, clock)
        assert feed.configure().status_code == 200
        # a hook set straight on the emulator: no receiver is needed, every delivery is lost
        sandbox.hook = Hook(None, "http://127.0.0.1:9/never", {}, {})
        changed = feed.change(3, "invoiced")
        assert changed["hookNotified"] is True
        assert sandbox.stats()["hook"]["missed"] == 1
        assert "notifications" not in sandbox.stats()["hook"]
        assert [e["orderId"] for e in feed.read().json()] == [changed["orderId"]]
