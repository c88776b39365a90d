"""``vtex-synerise webhooks``: serve the webhook endpoints, and say how to point VTEX and Synerise
at them.

``serve`` runs werkzeug's development server unless ``--gunicorn`` (or ``--workers``) asks for
gunicorn (``gthread`` workers), the production server. Either way Redis is resolved first (an
embedded one is started when ``REDIS_URL`` is unset) and handed to Celery through the
environment, like the worker commands do.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

import click

from etl import connections
from etl.config import Settings
from etl.webhooks.app import connection_secrets, create_app, paths_of
from etl.webhooks.auth import HEADER
from etl.webhooks.server import THREADS, WORKERS, GunicornServer, parse_bind, serve_dev
from workers.dispatch import prepare_sender

__all__ = ["check_bind", "trigger_settings", "webhooks"]


@click.group()
def webhooks() -> None:
    """Realtime sync: receive Master Data triggers, the VTEX Orders Hook and Synerise consent."""


def check_bind(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """The ``--bind`` option's check: ``HOST:PORT``."""
    try:
        parse_bind(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    return value


@webhooks.command("serve")
@click.option("--bind", default="127.0.0.1:8000", show_default=True, callback=check_bind,
              help="HOST:PORT to listen on.")
@click.option("--gunicorn", "use_gunicorn", is_flag=True,
              help="Serve with gunicorn (production) instead of the development server.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help=f"Gunicorn worker processes (implies --gunicorn) [default: {WORKERS}].")
@click.option("--threads", type=click.IntRange(min=1), default=THREADS, show_default=True,
              help="Threads per gunicorn worker.")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Gunicorn access log on stderr.")
def serve(
    bind: str, use_gunicorn: bool, workers: int | None, threads: int, access_log: bool
) -> None:
    """Serve the webhook endpoints of every connection that has a WEBHOOK_SECRET (today's
    paths for the default connection, /hooks/{connection}/... for each)."""
    connection_secrets(connections.load(require=()))  # none at all: one line, exit 2
    settings = Settings.from_env(require=()).with_infra()
    os.environ.update(settings.process_env())  # Celery reads REDIS_URL when it is configured
    redis_url = settings.redis_url

    def factory() -> Any:
        prepare_sender()
        return create_app(redis_url=redis_url)

    if use_gunicorn or workers is not None:
        workers = workers or WORKERS
        click.echo(f"webhooks: gunicorn on {bind} ({workers} x {threads} threads)", err=True)
        GunicornServer(
            factory, bind, workers=workers, threads=threads,
            accesslog="-" if access_log else None,
        ).run()  # fmt: skip
    else:
        click.echo(f"webhooks: development server on {bind} (use --gunicorn in production)",
                   err=True)  # fmt: skip
        serve_dev(factory, bind)


@webhooks.command("setup-help")
@click.option("--url", "base_url", default="https://webhooks.example.com", show_default=True,
              help="Public base URL of this service, as VTEX and Synerise reach it.")
@click.option("--show-secret", is_flag=True, help="Print WEBHOOK_SECRET instead of a placeholder.")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@click.option("--connection", default=None, metavar="NAME",
              help="The connection to configure (optional when there is only one).")
def setup_help(base_url: str, show_secret: bool, as_json: bool, connection: str | None) -> None:
    """Print the Master Data trigger, Orders Hook and Synerise webhook settings to configure."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter("expected an http(s) URL", param_hint="--url")
    known = connections.names()
    name = connections.select(connection, known)
    secret = "<WEBHOOK_SECRET>"
    if show_secret:
        secret = connection_secrets({name: connections.load(require=())[name]})[name]
    paths = paths_of(name, name == connections.unnamed(known))
    triggers = trigger_settings(base_url.rstrip("/"), secret, paths)
    if as_json:
        click.echo(json.dumps(triggers, indent=2))
        return
    for item in triggers:
        click.echo(f"== {item['name']}")
        for label in ("where", "rule", "action", "url", "method"):
            click.echo(f"  {label + ':':<8} {item[label]}")
        click.echo("  headers:")
        for name, value in item["headers"].items():
            click.echo(f"    {name}: {value}")
        click.echo(f"  body:    {json.dumps(item['body'])}")
        if item.get("note"):
            click.echo(f"  note:    {item['note']}")
        click.echo("")


def trigger_settings(
    base_url: str, secret: str, paths: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """What to configure where, for every endpoint of a connection (``paths_of``; today's
    paths when not given) (``setup-help``; tests read it too)."""
    paths = paths or paths_of("default", True)
    headers = {HEADER: secret, "Content-Type": "application/json"}
    md = "VTEX Master Data v1 (https://{account}.ds.vtexcrm.com.br) > CL > Triggers"
    customer_url = base_url + paths["customer"]
    return [
        {
            "name": "CL created -> Synerise profile",
            "where": md,
            "rule": "A record is created",
            "action": "Send an HTTP request",
            "url": customer_url,
            "method": "POST",
            "headers": headers,
            "body": {"id": "{!id}"},
        },
        {
            "name": "CL changed -> Synerise profile",
            "where": md,
            "rule": "A record is changed",
            "action": "Send an HTTP request",
            "url": customer_url,
            "method": "PATCH",
            "headers": headers,
            "body": {"id": "{!id}"},
            "note": "our own consent writes fire it too; they are recognised, not sent back."
            " {!field} inserts the record's field (VTEX's v2 trigger syntax; check v1's editor)",
        },
        {
            "name": "CL deleted -> DELETE_BEHAVIOUR (event | remove | ignore)",
            "where": md,
            "rule": "A record is deleted",
            "action": "Send an HTTP request",
            "url": customer_url,
            "method": "DELETE",
            "headers": headers,
            "body": {"id": "{!id}", "email": "{!email}", "userId": "{!userId}"},
            "note": "remove needs userId (Synerise deletes profiles by customId only)",
        },
        {
            "name": "VTEX order status -> Synerise transaction",
            "where": "CLI: vtex-synerise vtex hook register",
            "rule": "Orders Hook, FromWorkflow filter on the statuses you choose",
            "action": "VTEX POSTs each notification",
            "url": base_url + paths["orders"],
            "method": "POST",
            "headers": {HEADER: secret},
            "body": {"Domain": "...", "OrderId": "...", "State": "...", "LastChange": "..."},
            "note": "configured by `vtex hook register --url " + base_url + "`",
        },
        {
            "name": "Synerise consent -> VTEX CL isNewsletterOptIn",
            "where": "Synerise > Automation: profile agreement changed > Outgoing webhook",
            "rule": "agreements.email changed",
            "action": "Outgoing webhook",
            "url": base_url + paths["consent"],
            "method": "POST",
            "headers": headers,
            "body": {
                "customId": "<profile customId>",
                "email": "<profile email>",
                "agreements": {"email": "<profile email agreement: true | false>"},
            },
            "note": "fill the <...> with the automation's profile inserts; customId or email"
            " required; agreements.email true/false (or 1/0). CONSENT_CREATE_MISSING_CL=true"
            " creates a missing CL document",
        },
    ]
