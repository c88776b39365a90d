"""``etl.http.new_session`` reads proxy settings once per host and agrees with ``requests``."""

from __future__ import annotations

import pytest
import requests

from etl.http import new_session

URLS = (
    "https://acme.vtexcommercestable.com.br/api/oms/pvt/orders/1",
    "http://127.0.0.1:8080/v4/transactions/batch",
    "https://api.synerise.com/v4/clients/batch",
)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"HTTPS_PROXY": "http://proxy.test:3128", "HTTP_PROXY": "http://proxy.test:3128"},
        {"HTTPS_PROXY": "http://proxy.test:3128", "NO_PROXY": "api.synerise.com,127.0.0.1"},
        {"REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"},
    ],
)
def test_environment_settings_match_a_plain_session(monkeypatch, env):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                 "https_proxy", "http_proxy", "no_proxy", "ALL_PROXY", "all_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ours, plain = new_session(), requests.Session()
    for url in URLS:
        for verify in (True, None, False, "/my/bundle.pem"):
            assert ours.merge_environment_settings(url, {}, None, verify, None) == (
                plain.merge_environment_settings(url, {}, None, verify, None)
            )


def test_the_environment_is_read_once_per_host(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = new_session()
    first = session.merge_environment_settings(URLS[0], {}, None, True, None)
    monkeypatch.setenv("HTTPS_PROXY", "http://other.test:3128")
    again = session.merge_environment_settings(URLS[0], {}, None, True, None)
    assert again["proxies"] == first["proxies"]
    assert first["proxies"]["https"] == "http://proxy.test:3128"
    other_host = session.merge_environment_settings(URLS[2], {}, None, True, None)
    assert other_host["proxies"]["https"] == "http://other.test:3128"


def test_trust_env_off_reads_nothing(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    session = new_session()
    session.trust_env = False
    assert session.merge_environment_settings(URLS[0], {}, None, True, None)["proxies"] == {}
