"""``vtex-synerise sandbox``: run the VTEX and Synerise emulators until Ctrl-C.

``serve`` prints ``export VAR=value`` lines (the ETL's environment, `etl.sandbox.sandbox_env`)
once both servers listen, so ``eval "$(vtex-synerise sandbox serve ... | head -6)"`` works in
another shell; then it serves until SIGINT/SIGTERM. ``expected`` prints the ground truth of a
generated dataset. Bad options exit 2 with click's usual message.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["sandbox"]


def _faults(
    latency_ms: float | None, rate_limit: float | None, options: tuple[str, ...]
) -> list[tuple[str, dict[str, Any]]]:
    from etl.sandbox.faults import parse_fault_option

    rules: list[tuple[str, dict[str, Any]]] = []
    if latency_ms is not None:
        rules.append(("*", {"latency_ms": latency_ms}))
    if rate_limit is not None:
        rules.append(("*", {"rate_limit": rate_limit}))
    for text in options:
        try:
            rules.append(parse_fault_option(text))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--fault") from None
    return rules


@click.group()
def sandbox() -> None:
    """Local emulators of VTEX and Synerise (real HTTP on loopback, fault injection)."""


@sandbox.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--vtex-port", type=click.IntRange(0, 65535), default=0, help="0: any free port.")
@click.option("--synerise-port", type=click.IntRange(0, 65535), default=0, help="0: any free port.")
@click.option("--customers", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--orders", type=click.IntRange(min=0), default=2000, show_default=True)
@click.option(
    "--products", type=click.IntRange(1, 2_147_483), default=60, show_default=True,
    help="Catalog products (1-3 SKUs each; some inactive, without a price or an image).",
)  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--fixtures",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Serve the VTEX documents in DIR/{customers,orders,products,prices}/*.json instead.",
)
@click.option(
    "--dirty-share", type=click.FloatRange(0, 1), default=0.05, show_default=True,
    help="Share of generated records with one defect.",
)  # fmt: skip
@click.option("--latency-ms", type=click.FloatRange(min=0), help="Added to every API request.")
@click.option(
    "--rate-limit", type=click.FloatRange(min=0, min_open=True),
    help="Requests/s per server; above it 429 with Retry-After.",
)  # fmt: skip
@click.option(
    "--fault", "fault_options", multiple=True, metavar="ROUTE:k=v,...",
    help="A fault rule, e.g. 'oms.get_order:error_rate=0.1,latency_ms=40'. Repeatable.",
)  # fmt: skip
@click.option("--hook-miss-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of order status changes the hook never delivers (the feed has them).")
@click.option("--feed-duplicate-rate", type=click.FloatRange(0, 1), default=0.0,
              show_default=True, help="Share of Orders Feed events delivered twice.")
@click.option("--account", default="sandbox", show_default=True)
@click.option("--app-key", help="VTEX app key the emulator accepts (default: the sandbox's).")
@click.option("--app-token", help="VTEX app token the emulator accepts (default: the sandbox's).")
@click.option("--api-key", help="Synerise API key the emulator accepts (default: the sandbox's).")
@click.option(
    "--strict/--relaxed", default=True, show_default=True,
    help="Synerise: refuse bodies that break its request models or documented rules (strict), "
    "or only what its API itself enforces, counting the rest (relaxed, for experiments).",
)  # fmt: skip
def serve(
    host: str,
    vtex_port: int,
    synerise_port: int,
    customers: int,
    orders: int,
    products: int,
    seed: int,
    fixtures: Path | None,
    dirty_share: float,
    latency_ms: float | None,
    rate_limit: float | None,
    fault_options: tuple[str, ...],
    hook_miss_rate: float,
    feed_duplicate_rate: float,
    account: str,
    app_key: str | None,
    app_token: str | None,
    api_key: str | None,
    strict: bool,
) -> None:
    """Serve both emulators and print the ETL's environment as export lines."""
    # Imported here: the sandbox is an optional extra, and `etl.cli` must load without it.
    from etl.sandbox import build_dataset, build_emulators, sandbox_env
    from etl.sandbox.server import serve_forever
    from etl.sandbox.synerise import SANDBOX_API_KEY
    from etl.sandbox.vtex import DEFAULT_APP_KEY, DEFAULT_APP_TOKEN

    rules = _faults(latency_ms, rate_limit, fault_options)
    try:
        dataset = build_dataset(customers, orders, seed, fixtures, dirty_share, account, products)
        vtex, synerise = build_emulators(
            dataset, rules, seed=seed, account=account, app_key=app_key or DEFAULT_APP_KEY,
            app_token=app_token or DEFAULT_APP_TOKEN, api_key=api_key or SANDBOX_API_KEY,
            vtex_options={"hook_miss_rate": hook_miss_rate, "seed": seed,
                          "feed_duplicate_rate": feed_duplicate_rate},
            synerise_options={"strict": strict},
        )  # fmt: skip
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    def ready(urls: list[str]) -> None:
        for name, value in sandbox_env(vtex, synerise, urls[0], urls[1]).items():
            click.echo(f"export {name}={shlex.quote(value)}")
        sys.stdout.flush()
        click.echo(
            f"VTEX sandbox at {urls[0]} ({dataset.customer_count} customers,"
            f" {dataset.order_count} orders, {len(dataset.product_ids())} products),"
            f" Synerise sandbox at {urls[1]}"
            f" ({'strict' if strict else 'relaxed'}); Ctrl-C to stop",
            err=True,
        )

    try:
        serve_forever(
            [(vtex.make_app(), host, vtex_port), (synerise.make_app(), host, synerise_port)],
            on_ready=ready,
        )
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}: {exc}") from None


@sandbox.command()
@click.option("--customers", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--orders", type=click.IntRange(min=0), default=2000, show_default=True)
@click.option("--products", type=click.IntRange(1, 2_147_483), default=60, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dirty-share", type=click.FloatRange(0, 1), default=0.05, show_default=True)
def expected(customers: int, orders: int, products: int, seed: int, dirty_share: float) -> None:
    """Print the ground truth of a generated dataset (what the ETL must send or reject)."""
    from etl.sandbox.data import Dataset

    dataset = Dataset(customers, orders, seed=seed, dirty_share=dirty_share, products=products)
    click.echo(json.dumps(dataset.expected(), indent=2))
