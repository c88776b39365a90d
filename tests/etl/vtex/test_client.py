"""VtexClient against ``responses``: requests as VTEX documents them, answers mapped to errors."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from etl.config import Secret, Settings
from etl.errors import (
    AuthenticationError,
    ConfigError,
    FatalError,
    NetworkError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)
from etl.vtex.auth import AppKeyAuth
from etl.vtex.client import VtexClient
from etl.vtex.paginators import ScrollExpiredError
from tests.etl.httpfakes import RecordingBudget, instant_policy

BASE = "https://acme.vtexcommercestable.com.br"
TOKEN = "APPTOKEN-very-secret-value"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def vtex(sleeps, budget):
    return VtexClient(
        BASE, "vtexappkey-acme-ABC", Secret(TOKEN), budget=budget, retry=instant_policy(sleeps)
    )


def query(call):
    return {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


def orders_answer(orders, total, pages):
    return {"list": orders, "paging": {"total": total, "pages": pages, "currentPage": 1}}


@responses.activate
def test_app_key_headers_are_sent_and_the_token_stays_hidden(vtex):
    responses.get(f"{BASE}/api/oms/pvt/orders/o-1", json={"orderId": "o-1"})
    vtex.get_order("o-1")
    headers = responses.calls[0].request.headers
    assert headers["X-VTEX-API-AppKey"] == "vtexappkey-acme-ABC"
    assert headers["X-VTEX-API-AppToken"] == TOKEN
    assert headers["Accept"] == "application/json"
    assert TOKEN not in repr(vtex) and TOKEN not in repr(vtex.http.auth)
    assert repr(AppKeyAuth("k", "plain")) == "AppKeyAuth(app_key='k', app_token='***')"


@responses.activate
def test_list_orders_sends_the_documented_filters(vtex):
    responses.get(
        f"{BASE}/api/oms/pvt/orders",
        json=orders_answer([{"orderId": "o-1"}], total=84, pages=6),
    )
    page = vtex.list_orders(
        T0, T0 + timedelta(days=1) - timedelta(milliseconds=1), page=2, per_page=15,
        statuses=["invoiced", "canceled"],
    )
    assert page.orders == [{"orderId": "o-1"}] and (page.total, page.pages) == (84, 6)
    assert query(responses.calls[0]) == {
        "f_creationDate": "creationDate:[2026-03-01T00:00:00.000Z TO 2026-03-01T23:59:59.999Z]",
        "page": "2",
        "per_page": "15",
        "orderBy": "creationDate,asc",
        "f_status": "invoiced,canceled",
    }


@pytest.mark.parametrize(("page", "per_page"), [(0, 100), (31, 100), (1, 0), (1, 101)])
def test_list_orders_refuses_pages_vtex_does_not_serve(vtex, page, per_page):
    with pytest.raises(ValueError):
        vtex.list_orders(T0, T0, page=page, per_page=per_page)


@responses.activate
def test_list_orders_with_an_unexpected_shape_fails_loudly(vtex):
    responses.get(f"{BASE}/api/oms/pvt/orders", json={"items": []})
    with pytest.raises(FatalError, match="'list' and 'paging'"):
        vtex.list_orders(T0, T0, page=1)


@responses.activate
def test_iter_orders_splits_windows_over_3000_orders(vtex):
    # 4,000 orders in the first 4 hours, 10 later: the day must be split
    instants = [T0 + timedelta(seconds=3.6 * i) for i in range(4000)]
    instants += [T0 + timedelta(hours=12, minutes=i) for i in range(10)]
    orders = [{"orderId": f"o-{i}", "creationDate": t} for i, t in enumerate(instants)]
    pattern = re.compile(r"creationDate:\[(.+) TO (.+)\]")

    def answer(request):
        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        low, high = (
            datetime.fromisoformat(v.replace("Z", "+00:00"))
            for v in pattern.fullmatch(params["f_creationDate"]).groups()
        )
        hits = [o for o in orders if low <= o["creationDate"] <= high]
        page, per_page = int(params["page"]), int(params["per_page"])
        rows = hits[(page - 1) * per_page : page * per_page]
        body = orders_answer(
            [{"orderId": o["orderId"]} for o in rows], len(hits), -(-len(hits) // per_page)
        )
        return 200, {}, json.dumps(body)

    responses.add_callback(responses.GET, f"{BASE}/api/oms/pvt/orders", callback=answer)
    seen = [o["orderId"] for page in vtex.iter_orders(T0, T0 + timedelta(days=1)) for o in page]
    assert sorted(seen) == sorted(o["orderId"] for o in orders)
    assert len(seen) == len(set(seen))
    assert all(int(query(call)["page"]) <= 30 for call in responses.calls)


@responses.activate
def test_get_order_returns_none_when_vtex_has_no_such_order(vtex):
    responses.get(f"{BASE}/api/oms/pvt/orders/v1-01", json={"orderId": "v1-01", "value": 990})
    responses.get(f"{BASE}/api/oms/pvt/orders/gone-01", status=404, json={"error": "not found"})
    assert vtex.get_order("v1-01") == {"orderId": "v1-01", "value": 990}
    assert vtex.get_order("gone-01") is None


@responses.activate
def test_ids_are_percent_encoded_in_paths(vtex):
    responses.get(f"{BASE}/api/oms/pvt/orders/a%2Fb%20c", json={"orderId": "a/b c"})
    assert vtex.get_order("a/b c") == {"orderId": "a/b c"}
    with pytest.raises(ValueError):
        vtex.get_order("")


@responses.activate
def test_a_429_waits_retry_after_and_penalises_the_shared_budget(vtex, sleeps, budget):
    responses.get(f"{BASE}/api/oms/pvt/orders/o-1", status=429, headers={"Retry-After": "7"})
    responses.get(f"{BASE}/api/oms/pvt/orders/o-1", json={"orderId": "o-1"})
    assert vtex.get_order("o-1") == {"orderId": "o-1"}
    assert sleeps == [7.0]
    assert budget.penalties == [7.0]
    assert budget.acquired == 2


@responses.activate
def test_server_errors_are_retried_a_bounded_number_of_times(vtex, sleeps):
    responses.get(f"{BASE}/api/oms/pvt/orders/o-1", status=503, body="Service Unavailable")
    with pytest.raises(ServerError, match="VTEX answered 503 to GET /api/oms/pvt/orders/o-1"):
        vtex.get_order("o-1")
    assert len(responses.calls) == 6 and len(sleeps) == 5


@responses.activate
def test_a_timeout_is_retried(vtex):
    responses.get(f"{BASE}/api/oms/pvt/orders/o-1", body=requests.ConnectTimeout("slow"))
    responses.get(f"{BASE}/api/oms/pvt/orders/o-1", json={"orderId": "o-1"})
    assert vtex.get_order("o-1") == {"orderId": "o-1"}


@responses.activate
def test_network_errors_after_the_last_attempt_are_raised(vtex):
    responses.get(f"{BASE}/api/oms/pvt/orders/o-1", body=requests.ConnectionError("refused"))
    with pytest.raises(NetworkError):
        vtex.get_order("o-1")


@responses.activate
def test_bad_credentials_are_fatal_name_the_fix_and_hide_the_token(vtex):
    responses.get(f"{BASE}/api/oms/pvt/orders/o-1", status=401, body="")
    with pytest.raises(AuthenticationError) as caught:
        vtex.get_order("o-1")
    assert "VTEX_APP_KEY and VTEX_APP_TOKEN" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert len(responses.calls) == 1


@responses.activate
def test_a_missing_permission_names_license_manager(vtex):
    responses.get(f"{BASE}/api/oms/pvt/orders", status=403, json={"error": "Forbidden"})
    with pytest.raises(PermissionDeniedError, match="License Manager"):
        vtex.list_orders(T0, T0, page=1)


SEARCH = f"{BASE}/api/dataentities/CL/search"
SCROLL = f"{BASE}/api/dataentities/CL/scroll"


@responses.activate
def test_search_customers_sends_rest_range_and_reads_the_total(vtex):
    responses.get(
        SEARCH,
        json=[{"id": "a"}, {"id": "b"}],
        headers={"REST-Content-Range": "resources 100-102/136108"},
    )
    docs, total = vtex.search_customers(
        "createdIn between 2026-01-01 AND 2026-01-02", ["id", "email"], "createdIn ASC", 100, 200
    )
    assert docs == [{"id": "a"}, {"id": "b"}] and total == 136108
    call = responses.calls[0]
    assert call.request.headers["REST-Range"] == "resources=100-200"
    assert query(call) == {
        "_where": "createdIn between 2026-01-01 AND 2026-01-02",
        "_sort": "createdIn ASC",
        "_fields": "id,email",
    }


@pytest.mark.parametrize(("start", "end"), [(-1, 10), (5, 5), (0, 101)])
def test_search_customers_refuses_bad_ranges(vtex, start, end):
    with pytest.raises(ValueError):
        vtex.search_customers("x", ["id"], "id ASC", start, end)


@responses.activate
def test_search_without_content_range_is_asked_again(vtex, sleeps):
    responses.get(SEARCH, json=[{"id": "a"}])
    responses.get(SEARCH, json=[{"id": "a"}], headers={"REST-Content-Range": "resources 0-1/1"})
    assert vtex.search_customers("x", ["id"], "id ASC", 0, 1) == ([{"id": "a"}], 1)
    assert len(sleeps) == 1


@responses.activate
def test_an_empty_search_needs_no_header(vtex):
    responses.get(SEARCH, json=[])
    assert vtex.search_customers("x", ["id"], "id ASC", 0, 100) == ([], 0)


@responses.activate
def test_find_customer_by_user_id_takes_the_newest(vtex):
    responses.get(SEARCH, json=[{"id": "cl-1"}], headers={"REST-Content-Range": "resources 0-1/2"})
    responses.get(SEARCH, json=[], headers={"REST-Content-Range": "resources */0"})
    assert vtex.find_customer_by_user_id("u-1", ["id", "email"]) == {"id": "cl-1"}
    assert vtex.find_customer_by_user_id("u-2", ["id"]) is None
    assert query(responses.calls[0]) == {
        "userId": "u-1", "_sort": "updatedIn DESC", "_fields": "id,email"
    }
    assert responses.calls[0].request.headers["REST-Range"] == "resources=0-1"


@responses.activate
def test_scroll_customers_follows_the_token(vtex):
    responses.get(SCROLL, json=[{"id": "1"}, {"id": "2"}], headers={"X-VTEX-MD-TOKEN": "tok"})
    responses.get(SCROLL, json=[{"id": "3"}])
    responses.get(SCROLL, json=[])
    pages = list(vtex.scroll_customers("updatedIn > 2026-01-01", ["id"], 2, sort="id ASC"))
    assert pages == [[{"id": "1"}, {"id": "2"}], [{"id": "3"}]]
    assert query(responses.calls[0]) == {
        "_where": "updatedIn > 2026-01-01", "_fields": "id", "_size": "2", "_sort": "id ASC"
    }
    assert query(responses.calls[1]) == {"_token": "tok"}
    assert query(responses.calls[2]) == {"_token": "tok"}


@responses.activate
def test_scroll_first_page_without_token_is_asked_again(vtex, sleeps):
    responses.get(SCROLL, json=[{"id": "1"}])
    responses.get(SCROLL, json=[{"id": "1"}], headers={"X-VTEX-MD-TOKEN": "tok"})
    responses.get(SCROLL, json=[])
    assert list(vtex.scroll_customers("x", ["id"], 10)) == [[{"id": "1"}]]
    assert len(sleeps) == 1


@responses.activate
def test_an_expired_scroll_token_reopens_and_fast_forwards(vtex):
    first = [{"id": "1"}, {"id": "2"}]
    responses.get(SCROLL, json=first, headers={"X-VTEX-MD-TOKEN": "t1"})
    responses.get(SCROLL, status=400, json={"Message": "Operation not found for this token"})
    responses.get(SCROLL, json=first, headers={"X-VTEX-MD-TOKEN": "t2"})  # re-opened
    responses.get(SCROLL, json=[{"id": "3"}])
    responses.get(SCROLL, json=[])
    ids = [d["id"] for page in vtex.scroll_customers("x", ["id"], 2) for d in page]
    assert ids == ["1", "2", "3"]
    assert query(responses.calls[3]) == {"_token": "t2"}


@responses.activate
def test_a_failed_scroll_page_is_not_asked_again_with_its_token(vtex, sleeps):
    # A 5xx (or a timeout) may come after VTEX served the page and moved the token on: asking
    # again with it could skip a page. The scroll is re-opened and fast-forwarded instead.
    first = [{"id": "1"}, {"id": "2"}]
    responses.get(SCROLL, json=first, headers={"X-VTEX-MD-TOKEN": "t1"})
    responses.get(SCROLL, status=502, body="Bad Gateway")
    responses.get(SCROLL, json=first, headers={"X-VTEX-MD-TOKEN": "t2"})  # re-opened
    responses.get(SCROLL, json=[{"id": "3"}])
    responses.get(SCROLL, json=[])
    ids = [d["id"] for page in vtex.scroll_customers("x", ["id"], 2) for d in page]
    assert ids == ["1", "2", "3"]
    assert [query(call).get("_token") for call in responses.calls] == [None, "t1", None, "t2", "t2"]
    assert sleeps == []  # no retry of the failed page: the re-open is the retry


@responses.activate
def test_other_scroll_400s_are_fatal(vtex):
    responses.get(SCROLL, json=[{"id": "1"}], headers={"X-VTEX-MD-TOKEN": "t1"})
    responses.get(SCROLL, status=400, json={"Message": "Invalid field"})
    with pytest.raises(FatalError, match="Invalid field"):
        list(vtex.scroll_customers("x", ["id"], 1))


@responses.activate
def test_too_many_simultaneous_scrolls_is_a_rate_limit(vtex, sleeps):
    responses.get(
        SCROLL, status=400, json={"Message": "Maximum simultaneous scrolls rate exceeded (10)"}
    )
    with pytest.raises(RateLimitedError):
        list(vtex.scroll_customers("x", ["id"], 10))
    assert len(sleeps) == 5


def test_scroll_size_is_checked(vtex):
    with pytest.raises(ValueError):
        vtex.scroll_customers("x", ["id"], 1001)
    with pytest.raises(ValueError):
        vtex.scroll_customers("x", "id", 10)


def test_scroll_expired_error_is_retriable():
    from etl.errors import RetriableError

    assert issubclass(ScrollExpiredError, RetriableError)


@responses.activate
def test_get_customer_reads_documents_and_none_when_missing(vtex):
    responses.get(f"{BASE}/api/dataentities/CL/documents/cl-1", json={"id": "cl-1"})
    responses.get(f"{BASE}/api/dataentities/CL/documents/cl-2", status=404)
    assert vtex.get_customer("cl-1", ["id", "email"]) == {"id": "cl-1"}
    assert query(responses.calls[0]) == {"_fields": "id,email"}
    assert vtex.get_customer("cl-2", ["id"]) is None


@responses.activate
def test_patch_and_upsert_customer(vtex):
    responses.patch(f"{BASE}/api/dataentities/CL/documents/cl-1", status=204)
    responses.patch(f"{BASE}/api/dataentities/CL/documents/cl-9", status=404)
    responses.patch(
        f"{BASE}/api/dataentities/CL/documents",
        status=201,
        json={"Id": "CL-cl-3", "Href": "h", "DocumentId": "cl-3"},
    )
    assert vtex.patch_customer("cl-1", {"isNewsletterOptIn": False}) is True
    assert json.loads(responses.calls[0].request.body) == {"isNewsletterOptIn": False}
    assert vtex.patch_customer("cl-9", {"isNewsletterOptIn": False}) is False
    assert vtex.upsert_customer({"id": "cl-3", "email": "x@y.z"})["DocumentId"] == "cl-3"


@responses.activate
def test_upsert_customer_unchanged_returns_empty(vtex):
    responses.patch(f"{BASE}/api/dataentities/CL/documents", status=304)
    assert vtex.upsert_customer({"id": "cl-3"}) == {}


HOOK = f"{BASE}/api/orders/hook/config"


@responses.activate
def test_hook_config_round_trip(vtex):
    responses.get(HOOK, status=404)
    responses.post(HOOK, json={"hook": {"url": "https://etl.example.com/hook"}})
    responses.get(HOOK, json={"hook": {"url": "https://etl.example.com/hook"}})
    responses.delete(HOOK, status=200)
    responses.delete(HOOK, status=404)
    assert vtex.get_hook_config() is None
    vtex.set_hook_config(
        "https://etl.example.com/hook", ["invoiced"], {"x-synerise-api-key": "hook-secret"}
    )
    assert json.loads(responses.calls[1].request.body) == {
        "filter": {"type": "FromWorkflow", "status": ["invoiced"]},
        "hook": {
            "url": "https://etl.example.com/hook",
            "headers": {"x-synerise-api-key": "hook-secret"},
        },
    }
    assert vtex.get_hook_config() == {"hook": {"url": "https://etl.example.com/hook"}}
    assert vtex.delete_hook_config() is True
    assert vtex.delete_hook_config() is False


@responses.activate
def test_a_refused_hook_names_the_host_but_not_the_secret(vtex):
    responses.post(HOOK, status=400, json={"error": {"message": "ping failed"}})
    with pytest.raises(FatalError) as caught:
        vtex.set_hook_config("https://etl.example.com/hook", ["invoiced"], {"k": "hook-secret"})
    assert "etl.example.com" in str(caught.value) and "hook-secret" not in str(caught.value)


@responses.activate
def test_catalog_calls(vtex):
    responses.get(
        f"{BASE}/api/catalog_system/pvt/products/GetProductAndSkuIds",
        json={"data": {"1": [10, 11], "2": [20]}, "range": {"total": 2, "from": 1, "to": 250}},
    )
    responses.get(f"{BASE}/api/catalog_system/pvt/sku/stockkeepingunitbyid/10", json={"Id": 10})
    responses.get(f"{BASE}/api/catalog_system/pvt/sku/stockkeepingunitbyid/99", status=404)
    responses.get(f"{BASE}/pricing/prices/10", json={"itemId": "10", "basePrice": 9.9})
    responses.get(f"{BASE}/pricing/prices/99", status=404)
    assert vtex.product_and_sku_ids(1, 250, category_id=7) == ({"1": [10, 11], "2": [20]}, 2)
    assert query(responses.calls[0]) == {"_from": "1", "_to": "250", "categoryId": "7"}
    assert vtex.get_sku(10) == {"Id": 10}
    assert vtex.get_sku(99) is None
    assert vtex.get_price(10) == {"itemId": "10", "basePrice": 9.9}
    assert vtex.get_price("99") is None


@responses.activate
def test_catalog_calls_draw_on_the_catalog_budget(sleeps):
    orders, catalog = RecordingBudget(), RecordingBudget()
    vtex = VtexClient(
        BASE, "vtexappkey-acme-ABC", Secret(TOKEN), budget=orders, catalog_budget=catalog,
        retry=instant_policy(sleeps),
    )  # fmt: skip
    responses.get(f"{BASE}/api/catalog_system/pvt/sku/stockkeepingunitbyid/10", json={"Id": 10})
    responses.get(f"{BASE}/pricing/prices/10", status=429, headers={"Retry-After": "3"})
    responses.get(f"{BASE}/pricing/prices/10", json={"itemId": "10"})
    responses.get(f"{BASE}/api/catalog_system/pub/saleschannel/1", json={"CurrencyCode": "BRL"})
    responses.get(f"{BASE}/api/catalog_system/pub/saleschannel/9", status=404)
    responses.get(f"{BASE}/api/oms/pvt/orders/o-1", json={"orderId": "o-1"})
    assert vtex.get_sku(10) == {"Id": 10} and vtex.get_price(10) == {"itemId": "10"}
    assert vtex.get_sales_channel(1) == {"CurrencyCode": "BRL"}
    assert vtex.get_sales_channel(9) is None
    vtex.get_order("o-1")
    assert (catalog.acquired, orders.acquired) == (5, 1)
    assert catalog.penalties == [3.0] and not orders.penalties
    headers = responses.calls[0].request.headers
    assert headers["X-VTEX-API-AppToken"] == TOKEN and headers["Accept"] == "application/json"


@pytest.mark.parametrize(("start", "end"), [(0, 10), (5, 4), (1, 251)])
def test_product_ranges_are_checked(vtex, start, end):
    with pytest.raises(ValueError):
        vtex.product_and_sku_ids(start, end)


def settings(**env):
    base = {"VTEX_ACCOUNT": "acme", "VTEX_APP_KEY": "vtexappkey-acme-ABC", "VTEX_APP_TOKEN": TOKEN}
    return Settings.from_env(env={**base, **env}, require=())


def test_from_settings_uses_the_account_host_and_the_real_pricing_host():
    client = VtexClient.from_settings(settings(SYNC_FETCH_CONCURRENCY="12"))
    assert client.http.base_url == BASE
    assert client.pricing_url == "https://api.vtex.com/acme"
    assert client.http.session.get_adapter(BASE)._pool_maxsize == 24


def test_from_settings_with_an_override_keeps_pricing_on_that_host():
    client = VtexClient.from_settings(settings(VTEX_BASE_URL="http://127.0.0.1:8801"))
    assert client.http.base_url == client.pricing_url == "http://127.0.0.1:8801"


def test_from_settings_without_credentials_is_a_config_error():
    env = {"VTEX_ACCOUNT": "acme", "VTEX_APP_KEY": "k"}
    with pytest.raises(ConfigError, match="VTEX_APP_TOKEN"):
        VtexClient.from_settings(Settings.from_env(env=env, require=()))
