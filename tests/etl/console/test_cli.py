"""``vtex-synerise console`` as an operator runs it: gunicorn, credentials, no-auth on loopback."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from etl import infra
from etl.cli import main
from tests.serving import cli_service


@pytest.fixture
def clean_env(tmp_path, monkeypatch, redis_url, database_url) -> dict[str, str]:
    for variable in list(os.environ):
        if variable.startswith(("VTEX_", "SYNERISE_", "CONSOLE_")):
            monkeypatch.delenv(variable)
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url,
           "ETL_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return env


def test_refuses_to_start_without_credentials(clean_env):
    result = CliRunner().invoke(main, ["console"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: CONSOLE_BASIC_AUTH: expected user:password (--no-auth only on loopback)"
    ]


@pytest.mark.parametrize("bind", ["0.0.0.0:8080", "192.168.1.10:8080", ":8080"])
def test_no_auth_only_on_loopback(clean_env, bind):
    result = CliRunner().invoke(main, ["console", "--no-auth", "--bind", bind])
    assert result.exit_code == 2
    assert "--no-auth is only allowed on a loopback address" in result.stderr


@contextlib.contextmanager
def serve(env: dict[str, str], folder: Path, *args: str) -> Iterator[str]:
    url = f"http://127.0.0.1:{infra.free_port()}"
    bind = url.removeprefix("http://")
    with cli_service(["console", "--bind", bind, *args], env, folder, f"{url}/healthz"):
        yield url


def test_gunicorn_serves_it_behind_basic_auth(clean_env, tmp_path):
    env = {**clean_env, "CONSOLE_BASIC_AUTH": "ops:pw-1,prometheus:pw-2"}
    with serve(env, tmp_path, "--workers", "2", "--threads", "2") as url:
        assert "gunicorn" in (tmp_path / "console.log").read_text()
        for path in ("/runs", "/metrics", "/api/runs"):
            assert requests.get(url + path, timeout=10).status_code == 401
        assert requests.get(url + "/runs", auth=("ops", "pw-1"), timeout=10).status_code == 200
        scraped = requests.get(url + "/metrics", auth=("prometheus", "pw-2"), timeout=10)
        assert scraped.status_code == 200 and "vtex_synerise_runs" in scraped.text
        assert requests.get(url + "/readyz", timeout=10).text == "ok\n"
    assert "pw-1" not in (tmp_path / "console.log").read_text()


def test_dev_server_without_auth_on_loopback(clean_env, tmp_path):
    with serve(clean_env, tmp_path, "--dev", "--no-auth") as url:
        page = requests.get(url + "/runs", timeout=10)
        assert page.status_code == 200 and "No runs yet" in page.text
    assert "development server" in (tmp_path / "console.log").read_text()
