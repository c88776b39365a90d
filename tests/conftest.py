"""Fixtures shared by every test folder. Helpers are in ``tests/helpers/`` (import them from
there, never from a conftest).

Real servers, once per session: embedded Redis and PostgreSQL (or REDIS_URL / DATABASE_URL).
    infra          (session) ``.redis_url`` and ``.database_url`` (maintenance DSN)
    redis_url      (session) the broker URL (db 0)
    redis_client   (function) a client on db 2, flushed for each test
    database_url   (function) a fresh database with every migration applied

End-to-end syncs (``tests/etl/sync``, ``tests/workers``): the VTEX and Synerise emulators over HTTP
on loopback, the test Redis (the broker, the lease and the rate budgets; flushed around each
test) and a fresh migrated PostgreSQL database per test.
    sandbox      a started sandbox; size and faults from ``@pytest.mark.sandbox(customers=...,
                 orders=..., seed=..., faults=[...], synerise_options={...})``
    sync_env     the environment the ETL reads (``sandbox.env()``, REDIS_URL, DATABASE_URL and
                 fast test settings), also set in ``os.environ``; override entries with
                 ``@pytest.mark.sync_env(SYNC_CHUNK_SIZE="20", ...)``
    engine       an ``Engine`` on those settings; ``workers.tasks.sync.engine`` and the CLI's
                 ``etl.cli.runtime`` return it
    worker       a threads Celery worker on every queue, with its upkeep loop
    store        the engine's state store
The realtime tests (``tests/etl/webhooks``) bring their own ``sandbox``, ``engine``, ``worker``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from etl import infra as embedded
from etl.sandbox import Sandbox, start_sandbox
from etl.state.store import StateStore
from etl.sync.engine import Engine
from tests.etl.wiring import wired_engine
from tests.helpers.databases import admin, scratch_database, with_database, with_redis_db
from tests.helpers.sync import FAST_SETTINGS


@dataclass(frozen=True)
class Infra:
    redis_url: str
    database_url: str


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    external_redis = os.environ.get("REDIS_URL")
    external_pg = os.environ.get("DATABASE_URL")
    # Not pytest's tmp_path: pytest prunes old session folders while another session may run.
    folder = Path(tempfile.mkdtemp(prefix="etl-test-infra-"))
    started = None
    if not (external_redis and external_pg):
        started = embedded.up(
            folder, need_redis=not external_redis, need_postgres=not external_pg
        )
    redis_url = external_redis or (started.redis_url if started else "")
    database_url = external_pg or (started.database_url if started else "")
    os.environ["ETL_TEST_STATE_DIR"] = str(folder)
    yield Infra(redis_url=redis_url, database_url=database_url)
    if started:
        embedded.down(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(infra: Infra) -> str:
    return with_redis_db(infra.redis_url, 0)


@pytest.fixture
def redis_client(infra: Infra) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(with_redis_db(infra.redis_url, 2))
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


_db_counter = itertools.count()


@pytest.fixture(scope="session")
def _template_database(infra: Infra) -> str:
    """A migrated template; each test clones it (CREATE DATABASE ... TEMPLATE is fast)."""
    from etl.state.migrate import upgrade

    name = f"etl_template_{os.getpid()}"
    admin(infra.database_url, f'DROP DATABASE IF EXISTS "{name}"')
    admin(infra.database_url, f'CREATE DATABASE "{name}"')
    upgrade(with_database(infra.database_url, name))
    return name


@pytest.fixture
def database_url(infra: Infra, _template_database: str) -> Iterator[str]:
    name = f"etl_test_{os.getpid()}_{next(_db_counter)}"
    with scratch_database(infra.database_url, name, template=_template_database) as dsn:
        yield dsn


# -- end-to-end syncs ---------------------------------------------------------------------------


_CLEARED = ("VTEX_", "SYNERISE_", "SYNC_", "PROFILE_", "ORDER_", "STORE_BASE_URL")
"""Variables of the developer's environment that must not leak into a test's settings."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sandbox(**kwargs): arguments of start_sandbox")
    config.addinivalue_line("markers", "sync_env(**variables): settings for the ETL")


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    """The broker database, flushed before and after: leases, budgets and queues start empty.

    One database for the broker and the engine: Celery's producer pool keeps the URL it was
    first given, so every test shares it.
    """
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    marker = request.node.get_closest_marker("sandbox")
    options: dict[str, Any] = {"customers": 200, "orders": 300, "seed": 7}
    if marker is not None:
        options.update(marker.kwargs)
    with start_sandbox(**options) as started:
        yield started


@pytest.fixture
def sync_env(
    request: pytest.FixtureRequest,
    sandbox: Sandbox,
    sync_redis: redis.Redis,
    redis_url: str,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The ETL's variables (also put in ``os.environ`` for in-process code)."""
    for variable in list(os.environ):
        if variable.startswith(_CLEARED):
            monkeypatch.delenv(variable)
    env = {
        **sandbox.env(),
        **FAST_SETTINGS,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "ETL_STATE_DIR": str(tmp_path / "state"),
    }
    marker = request.node.get_closest_marker("sync_env")
    if marker is not None:
        env.update({k: str(v) for k, v in marker.kwargs.items()})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray ./.env
    _clear_caches()
    yield env
    _clear_caches()


def _clear_caches() -> None:
    from etl.cli import runtime
    from workers.tasks import sync as tasks

    for cached in (runtime.settings, runtime.store, runtime.engines, tasks.engines):
        clear = getattr(cached, "cache_clear", None)  # not while monkeypatched
        if clear is not None:
            clear()


@pytest.fixture
def engine(sync_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The engine tests, the in-process CLI and the in-process worker all share."""
    with wired_engine(sync_env, monkeypatch) as built:
        yield built


@pytest.fixture
def store(engine: Engine) -> StateStore:
    return engine.store


@pytest.fixture
def celery_app(sync_env: dict[str, str]) -> Any:
    from workers.app import app

    app.conf.broker_url = sync_env["REDIS_URL"]
    return app


@pytest.fixture
def worker(celery_app: Any, engine: Engine) -> Iterator[Any]:
    """A real Celery worker (threads) consuming every queue, with its upkeep loop."""
    from celery.contrib.testing.worker import start_worker

    from workers.tasks.sync import start_upkeep

    with start_worker(
        celery_app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        queues=["backfill", "incremental", "realtime"],
        shutdown_timeout=30,
    ) as started:
        stop = start_upkeep()
        try:
            yield started
        finally:
            stop.set()
