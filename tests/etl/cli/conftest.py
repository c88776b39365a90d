"""CLI tests that run against the sandbox share the sync tests' fixtures and markers."""

from tests.etl.sync.conftest import (  # noqa: F401  (fixtures and marker registration)
    celery_app,
    engine,
    pytest_configure,
    sandbox,
    store,
    sync_env,
    sync_redis,
    worker,
)
