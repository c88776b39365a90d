"""The CLI: every command has help, bad configuration exits 2 with one line, programs are wired."""

from __future__ import annotations

import os
import sys

import click
import psycopg2
import pytest
from click.testing import CliRunner

from etl.cli import main
from tests.helpers.databases import scratch_database


def all_commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, (*path, name))


COMMANDS = [(), *all_commands(main)]


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """A clean environment: no credentials, no external servers, an empty state folder."""
    for variable in list(os.environ):
        if variable.startswith(("VTEX_", "SYNERISE_", "SYNC_", "FLOWER_", "PROFILE_", "ORDER_")) \
                or variable in ("REDIS_URL", "DATABASE_URL", "WEBHOOK_SECRET"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("ETL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)  # no ./.env
    return CliRunner()


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "main")
def test_every_command_has_help(runner, path):
    result = runner.invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version(runner):
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert "vtex-synerise, version" in result.output


@pytest.mark.parametrize("args", [["infra", "status"], ["db", "upgrade"], ["worker"], ["beat"]])
def test_config_error_is_one_line_and_exit_2(runner, monkeypatch, args):
    monkeypatch.setenv("SYNC_CHUNK_SIZE", "lots")
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: SYNC_CHUNK_SIZE: expected a whole number from 1 to 10000, got 'lots'"
    ]


def test_flower_refuses_to_start_without_auth(runner, monkeypatch):
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("Flower must not start"))
    result = runner.invoke(main, ["flower"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: FLOWER_BASIC_AUTH: expected user:password")
    assert len(result.stderr.splitlines()) == 1


@pytest.fixture
def execs(runner, monkeypatch, redis_url, database_url):
    """Capture what the Celery commands would exec, against the test servers."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    calls: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: calls.append((argv, env)))
    return calls


def test_worker_execs_celery_with_the_servers(runner, execs, redis_url, database_url, tmp_path):
    result = runner.invoke(main, ["--log-level", "warning", "worker", "-Q", "backfill",
                                  "-c", "3", "-P", "threads", "-n", "w1@%h"])
    assert result.exit_code == 0, result.output
    [(argv, env)] = execs
    assert argv == [sys.executable, "-m", "celery", "-A", "workers.app", "worker",
                    "--queues", "backfill", "--pool", "threads", "--loglevel", "WARNING",
                    "--without-gossip", "--concurrency", "3", "--hostname", "w1@%h"]
    assert env["REDIS_URL"] == redis_url and env["DATABASE_URL"] == database_url
    assert env["ETL_STATE_DIR"] == str(tmp_path / "state")


def test_a_worker_started_first_migrates_the_database(runner, execs, infra, monkeypatch):
    """A worker started before anything else finds its tables (no `relation "sync_run" does not
    exist` loop)."""
    with scratch_database(infra.database_url, f"etl_empty_{os.getpid()}") as empty:
        monkeypatch.setenv("DATABASE_URL", empty)
        result = runner.invoke(main, ["worker", "-Q", "backfill"])
        assert result.exit_code == 0, result.output
        with psycopg2.connect(empty) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM sync_run")
            assert cur.fetchone() == (0,)
        conn.close()
    assert len(execs) == 1


def test_worker_rejects_unknown_queues(runner, execs):
    result = runner.invoke(main, ["worker", "-Q", "backfill,celery"])
    assert result.exit_code == 2
    assert "backfill, incremental, realtime" in result.output
    assert execs == []


def test_beat_keeps_its_schedule_in_the_state_folder(runner, execs, tmp_path):
    result = runner.invoke(main, ["beat"])
    assert result.exit_code == 0, result.output
    [(argv, _)] = execs
    assert argv[5:8] == ["beat", "--schedule", str(tmp_path / "state" / "celerybeat-schedule")]


def test_flower_gets_credentials_through_its_environment(runner, execs, monkeypatch):
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "admin:pw-from-env")
    assert runner.invoke(main, ["flower", "--port", "5599"]).exit_code == 0
    assert runner.invoke(main, ["flower", "--basic-auth", "ops:pw-from-flag"]).exit_code == 0
    (argv, env), (argv2, env2) = execs
    assert env["FLOWER_BASIC_AUTH"] == "admin:pw-from-env"
    assert env2["FLOWER_BASIC_AUTH"] == "ops:pw-from-flag"
    assert "--port=5599" in argv
    assert not any("pw-from" in arg for arg in argv + argv2), "no password on the command line"


def test_flower_no_auth(runner, execs):
    result = runner.invoke(main, ["flower", "--no-auth"])
    assert result.exit_code == 0, result.output
    [(_, env)] = execs
    assert "FLOWER_BASIC_AUTH" not in env


def test_db_upgrade_reports_what_it_did(runner, execs):
    result = runner.invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "database is up to date"  # the fixture DB is migrated


def test_infra_status_starts_nothing(runner, tmp_path):
    result = runner.invoke(main, ["infra", "status"])
    assert result.exit_code == 0, result.output
    assert "redis      stopped" in result.output
    assert "postgres   stopped" in result.output
    assert not (tmp_path / "state" / "infra.json").exists()
