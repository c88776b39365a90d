"""``vtex-synerise vtex hook|feed``: the VTEX Orders Hook and Orders Feed v3 of the app key.

``hook register`` points the hook at the webhook service's orders endpoint with a
``FromWorkflow`` filter on the chosen statuses and the ``x-synerise-api-key`` header carrying
``WEBHOOK_SECRET``. VTEX pings the URL on save and refuses the configuration unless it answers
200 within 5 s, so the service must already run and be reachable from the internet. One hook per
app key; a hook that receives nothing for 3 days is removed by VTEX. So ``hook register`` also
gives the app key an Orders Feed on the same statuses (unless ``--no-feed``): beat's consumer
(``etl.sync.feed``, every ``ORDERS_FEED_INTERVAL``) sends what the hook missed, once.
``feed register|show|delete`` manage the feed alone; ``feed drain`` runs the consumer now.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click

from etl import connections
from etl.config import Settings
from etl.errors import ConfigError, EtlError
from etl.vtex.client import FEED_RETENTION, FEED_VISIBILITY_TIMEOUT, VtexClient
from etl.webhooks.app import ORDER_HOOK_PATH, paths_of
from etl.webhooks.auth import HEADER

__all__ = ["KNOWN_STATUSES", "vtex"]

T = TypeVar("T")

DEFAULT_STATUSES = "payment-approved,invoiced,canceled"
KNOWN_STATUSES = frozenset(
    {
        "order-created", "order-completed", "on-order-completed", "payment-pending",
        "waiting-for-order-authorization", "approve-payment", "payment-approved",
        "waiting-for-seller-decision", "authorize-fulfillment", "window-to-cancel",
        "ready-for-handling", "start-handling", "handling", "invoice-after-cancellation-deny",
        "order-accepted", "invoice", "invoiced", "replaced", "request-cancel",
        "cancellation-requested", "cancel", "canceled", "order-create-error",
        "order-creation-error", "waiting-ffmt-authorization", "release-to-fulfillment",
        "waiting-for-sellers-confirmation",
    }
)  # fmt: skip
"""OMS status names (VTEX API reference §4); VTEX does not validate the filter's names."""


CONNECTION = click.option(
    "--connection", default=None, metavar="NAME",
    help="The connection whose VTEX account to act on (optional when there is only one).",
)  # fmt: skip


def _settings(connection: str | None, require: tuple[str, ...]) -> Settings:
    """The settings of the named connection (the only one when not named)."""
    name = connections.select(connection)
    return connections.load(require=require)[name].settings


def _client(connection: str | None) -> VtexClient:
    return VtexClient.from_settings(_settings(connection, ("vtex",)))


def _call(action: Callable[[], T]) -> T:
    """Run a VTEX call; an error VTEX answered (or no answer) ends the command with exit 1."""
    try:
        return action()
    except ConfigError:
        raise  # the CLI's root turns it into exit 2
    except EtlError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)


@click.group()
def vtex() -> None:
    """VTEX account setup for the realtime sync."""


@vtex.group()
def hook() -> None:
    """The Orders Hook (one per app key): register, show, delete."""


def hook_url(url: str, path: str = ORDER_HOOK_PATH) -> str:
    """The orders endpoint: ``url`` itself, or the service's ``path`` (a connection's,
    ``etl.webhooks.app.paths_of``) when ``url`` is a bare host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter("expected an http(s) URL", param_hint="--url")
    if parts.path in ("", "/"):
        parts = parts._replace(path=path)
    return urlunsplit(parts)


def _statuses(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one status")
    return list(dict.fromkeys(names))


def _check_statuses(settings: Settings, statuses: list[str]) -> None:
    """Warn about names VTEX will never match and update statuses that will not notify."""
    unknown = [name for name in statuses if name not in KNOWN_STATUSES]
    if unknown:
        click.echo(f"warning: not OMS status names, VTEX will never match them: "
                   f"{', '.join(unknown)}", err=True)  # fmt: skip
    missing = [name for name in settings.order_update_statuses if name not in statuses]
    if missing:
        click.echo(f"warning: ORDER_UPDATE_STATUSES {', '.join(missing)} will not notify: "
                   "add them to --statuses to update those transactions", err=True)  # fmt: skip


_STATUSES_OPTION = click.option(
    "--statuses", default=DEFAULT_STATUSES, show_default=True, callback=_statuses,
    help="Comma-separated OMS statuses that notify (FromWorkflow filter).",
)  # fmt: skip


@hook.command("register")
@click.option("--url", required=True,
              help=f"The public URL of the service (its {ORDER_HOOK_PATH} is appended to a bare "
              "host) or of the orders endpoint itself.")
@_STATUSES_OPTION
@click.option("--feed/--no-feed", default=True, show_default=True,
              help="Also give the app key an Orders Feed on the same statuses (the safety net).")
@CONNECTION
def register(url: str, statuses: list[str], feed: bool, connection: str | None) -> None:
    """Configure the Orders Hook: filter, URL and the secret header (and the Orders Feed).

    A connection other than the default one is pointed at its own /hooks/{connection}/orders."""
    known = connections.names()
    name = connections.select(connection, known)
    settings = _settings(name, ("vtex", "webhooks"))
    assert settings.webhook_secret is not None  # required above
    _check_statuses(settings, statuses)
    target = hook_url(url, paths_of(name, name == connections.unnamed(known))["orders"])
    headers = {HEADER: settings.webhook_secret.reveal()}
    client = VtexClient.from_settings(settings)
    _call(lambda: client.set_hook_config(target, statuses, headers))
    click.echo(f"hook registered: {target} on {', '.join(statuses)}")
    if feed:
        _call(lambda: client.set_feed_config(statuses))
        click.echo(f"feed registered on {', '.join(statuses)}")


@hook.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the configuration as JSON.")
@CONNECTION
def show(as_json: bool, connection: str | None) -> None:
    """Show the Orders Hook configuration (header values masked)."""
    config = _call(lambda: _client(connection).get_hook_config())
    if config is None:
        click.echo("no hook configured", err=True)
        sys.exit(1)
    masked = _masked(config)
    if as_json:
        click.echo(json.dumps(masked, indent=2))
        return
    hook_part = masked.get("hook") or {}
    spec = masked.get("filter") or {}
    click.echo(f"url:      {hook_part.get('url')}")
    click.echo(f"filter:   {spec.get('type')} {', '.join(spec.get('status') or ['(all)'])}")
    for name, value in (hook_part.get("headers") or {}).items():
        click.echo(f"header:   {name}: {value}")


@hook.command("delete")
@CONNECTION
def delete(connection: str | None) -> None:
    """Remove the Orders Hook."""
    if not _call(lambda: _client(connection).delete_hook_config()):
        click.echo("no hook configured", err=True)
        sys.exit(1)
    click.echo("hook deleted")


def _masked(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration with every header value replaced by ``***``."""
    hook_part = dict(config.get("hook") or {})
    if isinstance(hook_part.get("headers"), dict):
        hook_part["headers"] = dict.fromkeys(hook_part["headers"], "***")
    return {**config, "hook": hook_part}


@vtex.group()
def feed() -> None:
    """The Orders Feed v3 (one per app key), beat's safety net under the hook."""


@feed.command("register")
@_STATUSES_OPTION
@click.option("--visibility-timeout", type=click.IntRange(1, 43_200),
              default=FEED_VISIBILITY_TIMEOUT, show_default=True,
              help="Seconds a read event stays hidden from other readers.")
@click.option("--retention", type=click.IntRange(345_600, 1_209_600), default=FEED_RETENTION,
              show_default=True, help="Seconds an uncommitted event is kept (4 to 14 days).")
@CONNECTION
def feed_register(
    statuses: list[str], visibility_timeout: int, retention: int, connection: str | None
) -> None:
    """Give the app key an Orders Feed of status changes to --statuses."""
    settings = _settings(connection, ("vtex",))
    _check_statuses(settings, statuses)
    _call(lambda: VtexClient.from_settings(settings).set_feed_config(
        statuses, visibility_timeout, retention))  # fmt: skip
    click.echo(f"feed registered on {', '.join(statuses)}")


@feed.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the configuration as JSON.")
@CONNECTION
def feed_show(as_json: bool, connection: str | None) -> None:
    """Show the Orders Feed configuration and how many events wait in it."""
    config = _call(lambda: _client(connection).get_feed_config())
    if config is None:
        click.echo("no feed configured", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(config, indent=2))
        return
    spec, queue = config.get("filter") or {}, config.get("queue") or {}
    click.echo(f"filter:   {spec.get('type')} {', '.join(spec.get('status') or ['(all)'])}")
    click.echo(f"waiting:  {config.get('quantity', '?')} events, oldest "
               f"{config.get('approximateAgeOfOldestMessageInSeconds', 0):.0f} s")  # fmt: skip
    click.echo(f"queue:    visibility {queue.get('visibilityTimeoutInSeconds')} s, retention "
               f"{queue.get('messageRetentionPeriodInSeconds')} s")  # fmt: skip


@feed.command("delete")
@CONNECTION
def feed_delete(connection: str | None) -> None:
    """Remove the Orders Feed (its waiting events go with it)."""
    if not _call(lambda: _client(connection).delete_feed_config()):
        click.echo("no feed configured", err=True)
        sys.exit(1)
    click.echo("feed deleted")


@feed.command("drain")
@click.option("--max-events", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@CONNECTION
def feed_drain(max_events: int, as_json: bool, connection: str | None) -> None:
    """Run the feed consumer now (beat runs it every ORDERS_FEED_INTERVAL seconds)."""
    from etl.cli import runtime
    from etl.sync.feed import consume_orders_feed
    from etl.sync.realtime import Realtime

    engine = runtime.engine(connection)
    report = _call(lambda: consume_orders_feed(
        Realtime.from_engine(engine), max_events=max_events,
        concurrency=engine.settings.sync_fetch_concurrency))  # fmt: skip
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    elif report.busy:
        click.echo("another feed consumer is running; nothing read")
    elif not report.configured:
        click.echo("no feed configured: run `vtex-synerise vtex feed register`", err=True)
        sys.exit(1)
    else:
        outcomes = ", ".join(f"{n} {word}" for word, n in sorted(report.outcomes.items()))
        click.echo(f"read {report.read}, committed {report.committed}"
                   f"{f' ({outcomes})' if outcomes else ''}, left for later {report.left}")
