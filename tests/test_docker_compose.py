"""docker/compose.yaml, checked without Docker: structure, and agreement with the code.

No Docker engine runs where the tests run, so the compose file is validated here: every command
a service runs must parse in the click CLI, and the worker must consume the queues Celery routes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
import yaml

import celeryconfig
from etl.cli import main
from etl.sync.queues import QUEUES

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker" / "compose.yaml"
APP_SERVICES = ("migrate", "worker", "beat", "flower", "webhooks")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def resolve(args: list[str]) -> click.Context:
    """Parse ``vtex-synerise ARGS`` down to the leaf command without running it."""
    command: click.Command = main
    ctx = main.make_context("vtex-synerise", [*args], resilient_parsing=False)
    rest = list(ctx.protected_args) + list(ctx.args)
    while isinstance(command, click.Group):
        assert rest, f"{args}: ends at a group, not a command"
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None, f"{args}: no command {name!r}"
        command = sub
        ctx = command.make_context(name or "", rest, parent=ctx)
        rest = list(getattr(ctx, "protected_args", [])) + list(ctx.args)
    assert not rest, f"{args}: unexpected arguments {rest}"
    return ctx


def test_services_are_declared(compose):
    assert set(compose["services"]) == {"redis", "postgres", *APP_SERVICES}
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
        assert (COMPOSE.parent / service["build"]["context"] / "docker" / "Dockerfile").is_file()
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in service["environment"]["DATABASE_URL"]


def test_app_services_wait_for_healthy_servers_and_migrations(compose):
    for name in ("worker", "beat", "flower", "webhooks"):
        depends = compose["services"][name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    for name in ("redis", "postgres"):
        assert "healthcheck" in compose["services"][name]


def test_redis_never_evicts_broker_keys(compose):
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_service_command_exists_in_the_cli(compose, service):
    command = compose["services"][service]["command"]
    assert isinstance(command, list) and command
    resolve(command)


def test_worker_consumes_every_routed_queue(compose):
    ctx = resolve(compose["services"]["worker"]["command"])
    consumed = set(ctx.params["queues"].split(","))
    routed = {route["queue"] for route in celeryconfig.task_routes.values()}
    assert routed <= consumed == set(QUEUES)
    assert celeryconfig.task_default_queue in consumed


def test_flower_listens_on_all_interfaces_and_requires_auth(compose):
    flower = compose["services"]["flower"]
    ctx = resolve(flower["command"])
    assert ctx.params["address"] == "0.0.0.0"
    assert not ctx.params["no_auth"]
    assert any(port.endswith(f":{ctx.params['port']}") for port in flower["ports"])


def test_dockerfile_runs_the_cli():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["vtex-synerise"]' in dockerfile
    assert "COPY celeryconfig.py" in dockerfile
