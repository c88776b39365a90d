"""CLI tests that run against the sandbox share the sync tests' fixtures and markers."""

from tests.etl.sync.conftest import (  # noqa: F401  (fixtures and marker registration)
    pytest_configure,
    sandbox,
    sync_env,
    sync_redis,
)
