"""What a user meets when infrastructure or input is wrong: one line naming the fix, a documented
exit code, no traceback (``--debug`` shows it), and no run left behind by the CLI itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
import redis
from click.testing import CliRunner

from etl.cli import main
from etl.cli.errors import EXIT_CODES_HELP
from etl.state.store import StateStore
from tests.helpers.databases import with_redis_db

REPO = Path(__file__).resolve().parents[3]
# Secrets are registered with the log redaction for the whole process: values no other test
# text contains.
CREDENTIALS = {"VTEX_ACCOUNT": "acme", "VTEX_APP_KEY": "vtexappkey-acme-TESTERRORS",
               "VTEX_APP_TOKEN": "app-token-test-errors-7f3a", "VTEX_BASE_URL": "http://127.0.0.1:9",
               "SYNERISE_API_KEY": "synerise-key-test-errors-9c1d"}  # fmt: skip


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def forget_runtime() -> None:
    """The CLI builds its settings, store and engine once per process: not across tests."""
    from etl.cli import runtime

    for cached in (runtime.settings, runtime.store, runtime.engines):
        cached.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_runtime():
    forget_runtime()
    yield
    forget_runtime()


@pytest.fixture
def env(tmp_path, monkeypatch, redis_url, database_url) -> dict[str, str]:
    """Working servers (a Redis database of this module's own) and credentials."""
    for variable in list(os.environ):
        if variable.startswith(("VTEX_", "SYNERISE_", "SYNC_", "ORDERS_FEED")):
            monkeypatch.delenv(variable)
    values = {**CREDENTIALS, "REDIS_URL": with_redis_db(redis_url, 5),
              "DATABASE_URL": database_url, "ETL_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    yield values
    client = redis.Redis.from_url(values["REDIS_URL"])
    client.flushdb()
    client.close()


def invoke(*args: str):
    return CliRunner().invoke(main, ["--log-level", "WARNING", *args])


def one_line(result, code: int) -> str:
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def runs_in(database_url: str) -> int:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM sync_run")
        return int(cur.fetchone()[0])


def test_sync_start_with_redis_unreachable_is_one_line_and_exit_5(env, monkeypatch):
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{closed_port()}/0")
    result = invoke("sync", "start", "orders", "--from", "2026-01-01", "--to", "2026-01-02")
    line = one_line(result, 5)
    assert line.startswith("error: Redis") and "unreachable" in line
    assert "REDIS_URL" in line and "vtex-synerise infra up" in line


def test_database_unreachable_is_one_line_and_exit_5(env, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://etl@127.0.0.1:{closed_port()}/etl")
    line = one_line(invoke("sync", "list"), 5)
    assert line.startswith("error: PostgreSQL unreachable") and "DATABASE_URL" in line


def test_debug_shows_the_traceback(env, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://etl@127.0.0.1:{closed_port()}/etl")
    result = CliRunner().invoke(main, ["--debug", "sync", "list"])
    assert result.exit_code != 0 and result.exception is not None
    assert type(result.exception).__name__ == "NetworkError"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("DATABASE_URL", "mysql://db/etl", "DATABASE_URL: expected a URL starting with postgresql"),
        ("REDIS_URL", "http://cache", "REDIS_URL: expected a URL starting with redis"),
    ],
)
def test_a_bad_url_is_one_line_and_exit_2(env, monkeypatch, variable, value, says):
    monkeypatch.setenv(variable, value)
    assert says in one_line(invoke("sync", "list"), 2)


def test_a_database_that_does_not_exist_names_database_url(env, monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url.replace("/etl_test_", "/missing_etl_test_"))
    line = one_line(invoke("sync", "list"), 2)
    assert line.startswith("error: DATABASE_URL:") and "does not exist" in line


def test_a_database_newer_than_the_code_is_one_line_and_exit_5(env, database_url):
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')")
    line = one_line(invoke("sync", "list"), 5)
    assert "9999" in line and "upgrade the code" in line


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["sync", "list", "--status", "bogus"], "--status"),
        (["sync", "rejects", "1", "--reason", "BOGUS"], "--reason"),
    ],
)
def test_an_invalid_choice_is_a_usage_error(env, args, option):
    result = invoke(*args)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr
    assert "Traceback" not in result.output


def test_reason_codes_are_taken_in_any_case(env, database_url):
    run_id = StateStore(database_url).runs.create(
        "backfill", "orders", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    )
    result = invoke("sync", "rejects", str(run_id), "--reason", "invalid_email")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SYNC_INCREMENTAL_CRON", "nope"),
        ("SYNC_INCREMENTAL_CRON", "61 * * * *"),
        ("SYNC_INCREMENTAL_CRON", "0 0 31 feb *"),
        ("SYNC_INCREMENTAL_SCOPES", "orders,products"),
        ("ORDERS_FEED_INTERVAL", "soon"),
        ("SYNC_PRODUCTS_CRON", "nightly"),
    ],
)
def test_bad_beat_settings_stop_beat_and_workers_with_one_line(env, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(os, "execve", lambda *args: pytest.fail("Celery must not start"))
    for command in ("beat", "worker"):
        line = one_line(invoke(command), 2)
        assert line.startswith(f"error: {variable}: expected"), line


def test_the_exit_codes_are_in_the_help_and_the_readme():
    result = CliRunner().invoke(main, ["--help"])
    readme = (REPO / "README.md").read_text()
    for line in EXIT_CODES_HELP.splitlines()[2:]:
        code, meaning = line.split(maxsplit=1)
        assert line.strip() in result.output
        assert f"| {code} | {meaning} |" in readme


def test_infra_up_migrates_and_keeps_the_redis_port(tmp_path, monkeypatch):
    for variable in ("REDIS_URL", "DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("ETL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    try:
        first = invoke("infra", "up")
        assert first.exit_code == 0, first.output
        urls = dict(line.split("=", 1) for line in first.stdout.splitlines())
        with psycopg2.connect(urls["DATABASE_URL"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM sync_run")  # the tables are there
        assert invoke("infra", "down", "--only", "redis").stdout.strip() == "stopped: redis"
        again = invoke("infra", "up")
        assert dict(line.split("=", 1) for line in again.stdout.splitlines()) == urls
    finally:
        invoke("infra", "down")


# -- Ctrl-C while following a run: it goes on ---------------------------------------------------


def interrupt_when_following(env: dict[str, str], args: list[str], tmp_path: Path):
    """Run ``vtex-synerise ARGS``, SIGINT it once it follows, return (exit code, stderr)."""
    log = tmp_path / "follow.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "etl.cli", "--log-level", "WARNING", *args],
            env={**os.environ, **env, "PYTHONPATH": str(REPO)}, cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while "run " not in log.read_text() and proc.poll() is None:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    return proc.wait(30), log.read_text()


def test_ctrl_c_during_sync_status_follow_says_the_run_goes_on(env, database_url, tmp_path):
    store = StateStore(database_url)
    now = datetime.now(UTC)
    run_id = store.runs.create("backfill", "orders", now - timedelta(days=1), now)
    code, stderr = interrupt_when_following(env, ["sync", "status", str(run_id), "--follow"],
                                            tmp_path)  # fmt: skip
    assert code == 130
    assert f"run {run_id} goes on in the background" in stderr
    assert f"vtex-synerise sync status {run_id} --follow" in stderr
    assert "Aborted!" not in stderr and "Traceback" not in stderr
    assert store.runs.get(run_id).status == "queued"


def test_ctrl_c_during_sync_start_wait_leaves_the_run_going(env, database_url, tmp_path):
    before = runs_in(database_url)
    code, stderr = interrupt_when_following(
        env, ["sync", "start", "orders", "--from", "2026-01-01", "--to", "2026-01-02", "--wait"],
        tmp_path,
    )
    assert code == 130, stderr
    assert "goes on in the background" in stderr and "Traceback" not in stderr
    assert runs_in(database_url) == before + 1
    run = StateStore(database_url).runs.find(limit=1)[0]
    assert run.status in ("queued", "running")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--reason", "BIRTHDATE_DROPPED"], "BIRTHDATE_DROPPED is a warning code: add --warnings"),
        (["--warnings", "--reason", "INVALID_EMAIL"], "INVALID_EMAIL is a reject reason"),
    ],
)
def test_reject_reasons_and_warning_codes_are_not_mixed_up(env, database_url, args, says):
    run_id = StateStore(database_url).runs.create(
        "backfill", "orders", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    )
    result = invoke("sync", "rejects", str(run_id), *args)
    assert result.exit_code == 2 and says in result.stderr
    fine = [arg for arg in args if arg == "--warnings"]
    code = "birthdate_dropped" if fine else "invalid_email"
    assert invoke("sync", "rejects", str(run_id), *fine, "--reason", code).exit_code == 0
