"""Fault injection and the loopback server, over real HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from aiohttp import web

from etl.sandbox.faults import (
    FaultInjector,
    RouteFaults,
    TokenBucket,
    add_fault_routes,
    coerce_fields,
    parse_fault_option,
)
from etl.sandbox.server import SandboxServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_app(injector: FaultInjector, calls: Counter[str]) -> web.Application:
    """Two OMS-like routes, one catalog route and one unnamed route."""
    app = web.Application(middlewares=[injector.middleware])

    def handler(name: str):
        async def handle(request: web.Request) -> web.Response:
            calls[name] += 1
            return web.json_response({"route": name})

        return handle

    app.router.add_get("/oms/order", handler("oms.get_order"), name="oms.get_order")
    app.router.add_get("/oms/list", handler("oms.list_orders"), name="oms.list_orders")
    app.router.add_get("/catalog", handler("catalog.get_sku"), name="catalog.get_sku")
    app.router.add_get("/unnamed", handler("unnamed"))
    add_fault_routes(app, injector)
    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def injector(clock: FakeClock) -> FaultInjector:
    return FaultInjector(seed=7, clock=clock)


@pytest.fixture
def calls() -> Counter[str]:
    return Counter()


@pytest.fixture
def server(injector: FaultInjector, calls: Counter[str]) -> Iterator[SandboxServer]:
    with SandboxServer(make_app(injector, calls)) as running:
        yield running


# -- configuration ---------------------------------------------------------------------------
def test_defaults_are_off() -> None:
    assert FaultInjector().for_route("anything") == RouteFaults()


def test_more_specific_pattern_wins_regardless_of_order() -> None:
    injector = FaultInjector()
    injector.set("oms.get_order", latency_ms=40)
    injector.set("oms.*", latency_ms=10, error_rate=0.5)
    injector.set("*", latency_ms=1, jitter_ms=2)
    faults = injector.for_route("oms.get_order")
    assert (faults.latency_ms, faults.error_rate, faults.jitter_ms) == (40, 0.5, 2)
    assert injector.for_route("oms.list_orders").latency_ms == 10
    assert injector.for_route("catalog.get_sku").latency_ms == 1


def test_later_set_wins_at_equal_specificity_and_fields_merge() -> None:
    injector = FaultInjector()
    injector.set("oms.*", latency_ms=10, rate_limit=5)
    injector.set("oms.?et_order", latency_ms=20)  # same literal count as "oms.get_order" minus 1
    injector.set("oms.*", latency_ms=30)
    assert injector.for_route("oms.list_orders").latency_ms == 30
    assert injector.for_route("oms.list_orders").rate_limit == 5  # merged into the same rule
    assert injector.for_route("oms.get_order").latency_ms == 20


def test_explicit_null_lifts_a_broader_rate_limit() -> None:
    injector = FaultInjector()
    injector.set("*", rate_limit=1)
    injector.set("oms.get_order", rate_limit=None)
    assert injector.for_route("oms.get_order").rate_limit is None
    assert injector.for_route("oms.list_orders").rate_limit == 1


def test_clear_one_pattern_or_all() -> None:
    injector = FaultInjector()
    injector.set("oms.*", latency_ms=10)
    injector.set("*", error_rate=0.1)
    injector.clear("oms.*")
    assert injector.for_route("oms.get_order") == RouteFaults(error_rate=0.1)
    injector.clear()
    assert injector.rules() == []
    assert injector.for_route("oms.get_order") == RouteFaults()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"latency": 1}, "unknown fault field 'latency'"),
        ({"error_rate": 1.5}, "error_rate: must be a share"),
        ({"latency_ms": -1}, "latency_ms: must be >= 0"),
        ({"latency_ms": None}, "latency_ms: cannot be null"),
        ({"rate_limit": 0}, "rate_limit: must be > 0"),
        ({"burst": 1.5}, "burst: expected a whole number"),
        ({"hang_rate": "often"}, "hang_rate: expected a number"),
        ({"error_rate": True}, "error_rate: expected a number"),
    ],
)
def test_invalid_fields_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        coerce_fields(fields)
    injector = FaultInjector()
    with pytest.raises(ValueError):
        injector.set("*", **fields)
    assert injector.rules() == []


def test_parse_fault_option() -> None:
    assert parse_fault_option("oms.get_order:latency_ms=40,jitter_ms=10,rate_limit=200") == (
        "oms.get_order",
        {"latency_ms": 40.0, "jitter_ms": 10.0, "rate_limit": 200.0},
    )
    assert parse_fault_option("synerise.*:rate_limit=none,burst=3") == (
        "synerise.*",
        {"rate_limit": None, "burst": 3},
    )


@pytest.mark.parametrize(
    "text", ["latency_ms=4", ":latency_ms=4", "oms.*:", "oms.*:latency_ms", "oms.*:nope=1"]
)
def test_parse_fault_option_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_fault_option(text)


def test_token_bucket_refills_on_monotonic_clock(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=2.0, burst=2, clock=clock)
    assert bucket.take() == 0.0
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 0.25
    assert bucket.take() == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.take() == 0.0
    clock.now += 100  # never more than the burst
    assert [bucket.take() for _ in range(3)][2] > 0


# -- middleware over HTTP --------------------------------------------------------------------
def test_latency_is_applied(server: SandboxServer, injector: FaultInjector) -> None:
    injector.set("oms.get_order", latency_ms=150, jitter_ms=20)
    started = time.monotonic()
    response = requests.get(server.url + "/oms/order", timeout=5)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.15


def test_many_requests_wait_concurrently(server: SandboxServer, injector: FaultInjector) -> None:
    """Delays are asyncio sleeps: 40 hung requests are all in flight before any returns."""
    injector.set("oms.get_order", hang_rate=1.0, hang_seconds=3)
    results: list[int] = []

    def call() -> None:
        results.append(requests.get(server.url + "/oms/order", timeout=30).status_code)

    threads = [threading.Thread(target=call) for _ in range(40)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while injector.stats.hangs < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert injector.stats.hangs == 40
    assert results == []  # nobody finished: all 40 were hanging at the same time
    for thread in threads:
        thread.join()
    assert results == [504] * 40


def test_rate_limit_answers_429_with_retry_after(
    server: SandboxServer, injector: FaultInjector, clock: FakeClock, calls: Counter[str]
) -> None:
    injector.set("oms.get_order", rate_limit=0.25, burst=2)
    url = server.url + "/oms/order"
    assert [requests.get(url, timeout=5).status_code for _ in range(2)] == [200, 200]
    limited = requests.get(url, timeout=5)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "4"  # one token every 4 s
    body = limited.json()
    assert body["status"] == 429 and body["path"] == "/oms/order"
    assert set(body) >= {"error", "errors", "message", "path", "status", "timestamp"}
    clock.now += 2.5
    assert requests.get(url, timeout=5).headers["Retry-After"] == "2"  # ceil(1.5)
    clock.now += 1.5
    assert requests.get(url, timeout=5).status_code == 200
    assert calls["oms.get_order"] == 3
    assert injector.stats.rate_limited == 2
    assert injector.stats.rate_limited_by_route == {"oms.get_order": 2}
    assert injector.stats.requests["oms.get_order"] == 5


def test_retry_after_is_at_least_one_second(server: SandboxServer, injector: FaultInjector) -> None:
    injector.set("oms.get_order", rate_limit=1000, burst=1)
    url = server.url + "/oms/order"
    requests.get(url, timeout=5)
    limited = requests.get(url, timeout=5)  # the fake clock stands still: 1 ms to the next token
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"


def test_pattern_rule_shares_one_bucket(server: SandboxServer, injector: FaultInjector) -> None:
    injector.set("oms.*", rate_limit=1, burst=2)
    statuses = [
        requests.get(server.url + path, timeout=5).status_code
        for path in ("/oms/order", "/oms/list", "/oms/order")
    ]
    assert statuses == [200, 200, 429]
    assert requests.get(server.url + "/catalog", timeout=5).status_code == 200


def test_error_rate_one_fails_every_request(
    server: SandboxServer, injector: FaultInjector, calls: Counter[str]
) -> None:
    injector.set("oms.*", error_rate=1.0)
    statuses = {requests.get(server.url + "/oms/list", timeout=5).status_code for _ in range(30)}
    assert statuses <= {500, 502, 503} and len(statuses) > 1
    assert calls["oms.list_orders"] == 0
    assert injector.stats.errors_injected == 30
    assert requests.get(server.url + "/catalog", timeout=5).status_code == 200


def test_error_rate_share_matches_counts(
    server: SandboxServer, injector: FaultInjector, calls: Counter[str]
) -> None:
    injector.set("oms.get_order", error_rate=0.5)
    statuses = [requests.get(server.url + "/oms/order", timeout=5).status_code for _ in range(60)]
    failed = sum(1 for s in statuses if s >= 500)
    assert 0 < failed < 60
    assert failed == injector.stats.errors_injected
    assert calls["oms.get_order"] == 60 - failed


def test_a_lost_answer_is_a_502_after_the_handler_served_the_request(
    server: SandboxServer, injector: FaultInjector, calls: Counter[str]
) -> None:
    injector.set("oms.get_order", lost_rate=1.0)
    response = requests.get(server.url + "/oms/order", timeout=5)
    assert response.status_code == 502
    assert calls["oms.get_order"] == 1  # served: its effect stands, only the answer is lost
    assert injector.stats.answers_lost == 1 and injector.stats.errors_injected == 0
    assert requests.get(server.url + "/oms/list", timeout=5).status_code == 200


def test_hang_answers_504_after_hang_seconds(
    server: SandboxServer, injector: FaultInjector, calls: Counter[str]
) -> None:
    injector.set("oms.get_order", hang_rate=1.0, hang_seconds=0.3)
    started = time.monotonic()
    response = requests.get(server.url + "/oms/order", timeout=5)
    assert response.status_code == 504
    assert time.monotonic() - started >= 0.3
    assert injector.stats.hangs == 1
    assert calls["oms.get_order"] == 0


def test_hang_times_out_client_without_blocking_others(
    server: SandboxServer, injector: FaultInjector
) -> None:
    injector.set("oms.get_order", hang_rate=1.0, hang_seconds=30)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(server.url + "/oms/order", timeout=0.3)
    assert requests.get(server.url + "/oms/list", timeout=5).status_code == 200
    assert injector.stats.hangs == 1


def test_unnamed_routes_are_untouched(server: SandboxServer, injector: FaultInjector) -> None:
    injector.set("*", error_rate=1.0)
    assert requests.get(server.url + "/unnamed", timeout=5).status_code == 200
    assert injector.stats.errors_injected == 0


def test_faults_configured_over_http(server: SandboxServer, calls: Counter[str]) -> None:
    faults_url = server.url + "/__sandbox__/faults"
    answer = requests.post(faults_url, json={"route": "oms.*", "error_rate": 1}, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["rules"] == [{"route": "oms.*", "error_rate": 1.0}]
    assert requests.get(server.url + "/oms/order", timeout=5).status_code >= 500
    # "*" matches the fault routes' names too, but /__sandbox__/ is never fault-injected
    requests.post(faults_url, json=[{"route": "*", "error_rate": 1}], timeout=5)
    state = requests.get(faults_url, timeout=5).json()
    assert len(state["rules"]) == 2
    assert state["stats"]["errors_injected"] == 1
    assert state["stats"]["requests"] == {"oms.get_order": 1}

    assert requests.delete(faults_url, params={"route": "oms.*"}, timeout=5).json()["rules"] == [
        {"route": "*", "error_rate": 1.0}
    ]
    assert requests.delete(faults_url, timeout=5).json()["rules"] == []
    assert requests.get(server.url + "/oms/order", timeout=5).status_code == 200
    assert calls["oms.get_order"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"error_rate": 1},
        {"route": "oms.*", "error_rate": 2},
        [{"route": "oms.*", "latency_ms": 5}, {"route": "x", "bogus": 1}],
        "not an object",
    ],
)
def test_bad_fault_posts_are_refused_atomically(server: SandboxServer, body: object) -> None:
    faults_url = server.url + "/__sandbox__/faults"
    answer = requests.post(faults_url, json=body, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"]
    assert requests.get(faults_url, timeout=5).json()["rules"] == []


def test_fault_post_needs_json(server: SandboxServer) -> None:
    answer = requests.post(server.url + "/__sandbox__/faults", data="{", timeout=5)
    assert answer.status_code == 400


# -- the server ------------------------------------------------------------------------------
def test_server_lifecycle() -> None:
    app = web.Application()
    app.router.add_get("/", _ok, name="root")
    server = SandboxServer(app)
    assert "new" in repr(server)
    server.start()
    assert server.start() is server  # idempotent
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert requests.get(server.url + "/", timeout=5).status_code == 200
    server.stop()
    server.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url + "/", timeout=2)
    with pytest.raises(RuntimeError):
        server.start()


def test_server_reports_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError):
            SandboxServer(web.Application(), port=port).start()


def test_stop_does_not_wait_for_hung_requests(injector: FaultInjector, calls: Counter[str]) -> None:
    server = SandboxServer(make_app(injector, calls)).start()
    injector.set("oms.get_order", hang_rate=1.0, hang_seconds=600)
    hung = threading.Thread(
        target=lambda: _swallow(lambda: requests.get(server.url + "/oms/order", timeout=60))
    )
    hung.start()
    while injector.stats.hangs == 0:
        time.sleep(0.01)
    server.stop()  # bounded by the shutdown timeout, not by hang_seconds
    hung.join(timeout=30)
    assert not hung.is_alive()


def test_serve_forever_until_sigterm() -> None:
    code = (
        "from aiohttp import web\n"
        "from etl.sandbox.server import serve_forever\n"
        "async def ok(request):\n"
        "    return web.json_response({'ok': True})\n"
        "def app():\n"
        "    a = web.Application()\n"
        "    a.router.add_get('/', ok, name='root')\n"
        "    return a\n"
        "serve_forever([(app(), '127.0.0.1', 0), (app(), '127.0.0.1', 0)],\n"
        "              on_ready=lambda urls: print(' '.join(urls), flush=True))\n"
        "print('stopped', flush=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))),
    )
    try:
        assert process.stdout is not None
        urls = process.stdout.readline().split()
        assert len(urls) == 2 and urls[0] != urls[1]
        for url in urls:
            assert requests.get(url + "/", timeout=5).json() == {"ok": True}
        process.send_signal(signal.SIGTERM)
        assert process.stdout.readline().strip() == "stopped"
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({})


def _swallow(call) -> None:
    with contextlib.suppress(requests.RequestException):
        call()
