"""``vtex-synerise vtex hook``: configure, show and remove the VTEX Orders Hook of the app key.

``register`` points the hook at the webhook service's orders endpoint with a ``FromWorkflow``
filter on the chosen statuses and the ``x-synerise-api-key`` header carrying ``WEBHOOK_SECRET``.
VTEX pings the URL on save and refuses the configuration unless it answers 200 within 5 s, so
the service must already run and be reachable from the internet. One hook per app key; a hook
that receives nothing for 3 days is removed by VTEX (keep the incremental sync running).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click

from etl.config import Settings
from etl.errors import ConfigError, EtlError
from etl.vtex.client import VtexClient
from etl.webhooks.app import ORDER_HOOK_PATH
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


def _client() -> VtexClient:
    return VtexClient.from_settings(Settings.from_env(require=("vtex",)))


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


def hook_url(url: str) -> str:
    """The orders endpoint: ``url`` itself, or the service's path when ``url`` is a bare host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter("expected an http(s) URL", param_hint="--url")
    if parts.path in ("", "/"):
        parts = parts._replace(path=ORDER_HOOK_PATH)
    return urlunsplit(parts)


def _statuses(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one status")
    return list(dict.fromkeys(names))


@hook.command("register")
@click.option("--url", required=True,
              help=f"The public URL of the service (its {ORDER_HOOK_PATH} is appended to a bare "
              "host) or of the orders endpoint itself.")
@click.option("--statuses", default=DEFAULT_STATUSES, show_default=True, callback=_statuses,
              help="Comma-separated OMS statuses that notify (FromWorkflow filter).")
def register(url: str, statuses: list[str]) -> None:
    """Configure the Orders Hook: filter, URL and the secret header."""
    settings = Settings.from_env(require=("vtex", "webhooks"))
    assert settings.webhook_secret is not None  # required above
    unknown = [name for name in statuses if name not in KNOWN_STATUSES]
    if unknown:
        click.echo(f"warning: not OMS status names, VTEX will never match them: "
                   f"{', '.join(unknown)}", err=True)  # fmt: skip
    missing = [name for name in settings.order_update_statuses if name not in statuses]
    if missing:
        click.echo(f"warning: ORDER_UPDATE_STATUSES {', '.join(missing)} will not notify: "
                   "add them to --statuses to update those transactions", err=True)  # fmt: skip
    target = hook_url(url)
    headers = {HEADER: settings.webhook_secret.reveal()}
    _call(lambda: VtexClient.from_settings(settings).set_hook_config(target, statuses, headers))
    click.echo(f"hook registered: {target} on {', '.join(statuses)}")


@hook.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the configuration as JSON.")
def show(as_json: bool) -> None:
    """Show the Orders Hook configuration (header values masked)."""
    config = _call(lambda: _client().get_hook_config())
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
def delete() -> None:
    """Remove the Orders Hook."""
    if not _call(lambda: _client().delete_hook_config()):
        click.echo("no hook configured", err=True)
        sys.exit(1)
    click.echo("hook deleted")


def _masked(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration with every header value replaced by ``***``."""
    hook_part = dict(config.get("hook") or {})
    if isinstance(hook_part.get("headers"), dict):
        hook_part["headers"] = dict.fromkeys(hook_part["headers"], "***")
    return {**config, "hook": hook_part}
