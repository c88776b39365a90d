"""Sandbox emulators of VTEX and Synerise on loopback, for tests, the demo and benchmarks.

`start_sandbox` starts both servers and says, through `Sandbox.env`, how to point the ETL at
them::

    with start_sandbox(customers=10_000, orders=20_000, seed=1) as sandbox:
        os.environ.update(sandbox.env())
        ...  # run the ETL; inspect sandbox.vtex / sandbox.synerise or GET /__sandbox__/stats

The pieces: `etl.sandbox.data` (generated or fixture data), `etl.sandbox.vtex` and
`etl.sandbox.synerise` (the emulators), `etl.sandbox.faults` (fault injection) and
`etl.sandbox.server` (serving an application in a thread).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from etl.errors import MissingExtraError

try:  # the `sandbox` extra: the emulators' server, and Synerise's request models
    import aiohttp  # noqa: F401
    import jsonschema  # noqa: F401
except ImportError:
    raise MissingExtraError("sandbox", "the sandbox") from None

from etl.sandbox.data import Dataset, FixtureDataset, Source
from etl.sandbox.faults import FaultInjector
from etl.sandbox.server import SandboxServer
from etl.sandbox.synerise import SANDBOX_API_KEY, SyneriseSandbox
from etl.sandbox.vtex import DEFAULT_APP_KEY, DEFAULT_APP_TOKEN, VtexSandbox, vtex_error_body

__all__ = [
    "Sandbox",
    "apply_faults",
    "build_dataset",
    "build_emulators",
    "sandbox_env",
    "start_sandbox",
]

FaultRules = Iterable[tuple[str, Mapping[str, Any]]]
"""``(route pattern, RouteFaults fields)`` pairs, e.g. ``[("oms.*", {"latency_ms": 40})]``."""


@dataclass
class Sandbox:
    """Both running emulators; stop them with `stop` or a ``with`` block."""

    dataset: Source
    vtex: VtexSandbox
    synerise: SyneriseSandbox
    vtex_server: SandboxServer
    synerise_server: SandboxServer

    @property
    def vtex_url(self) -> str:
        return self.vtex_server.url

    @property
    def synerise_url(self) -> str:
        return self.synerise_server.url

    def env(self) -> dict[str, str]:
        """Environment variables pointing the ETL (`etl.config.Settings`) at the emulators."""
        return sandbox_env(self.vtex, self.synerise, self.vtex_url, self.synerise_url)

    def stop(self) -> None:
        """Stop both servers (idempotent)."""
        self.vtex_server.stop()
        self.synerise_server.stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def sandbox_env(
    vtex: VtexSandbox, synerise: SyneriseSandbox, vtex_url: str, synerise_url: str
) -> dict[str, str]:
    """The ETL's environment for emulators served at these URLs."""
    return {
        "VTEX_ACCOUNT": vtex.account,
        "VTEX_APP_KEY": vtex.app_key,
        "VTEX_APP_TOKEN": vtex.app_token,
        "VTEX_BASE_URL": vtex_url,
        "SYNERISE_API_KEY": synerise.api_key,
        "SYNERISE_API_HOST": synerise_url,
    }


def build_dataset(
    customers: int,
    orders: int,
    seed: int,
    fixtures: str | Path | None = None,
    dirty_share: float = 0.05,
    account: str = "sandbox",
    products: int = 60,
) -> Source:
    """The data to serve: the fixtures directory when given, else a generated `Dataset`."""
    if fixtures is not None:
        return FixtureDataset(fixtures, account=account)
    return Dataset(
        customers, orders, seed=seed, dirty_share=dirty_share, account=account, products=products
    )


def apply_faults(rules: FaultRules, *injectors: FaultInjector) -> None:
    """Set every rule on every injector (a pattern that names no route of a server is inert).

    Raises:
        ValueError: a bad pattern or field, before anything is applied.
    """
    checked = [(pattern, dict(fields)) for pattern, fields in rules]
    probe = FaultInjector()
    for pattern, fields in checked:
        probe.set(pattern, **fields)
    for injector in injectors:
        for pattern, fields in checked:
            injector.set(pattern, **fields)


def build_emulators(
    dataset: Source,
    faults: FaultRules = (),
    *,
    seed: int = 0,
    account: str = "sandbox",
    app_key: str = DEFAULT_APP_KEY,
    app_token: str = DEFAULT_APP_TOKEN,
    api_key: str = SANDBOX_API_KEY,
    vtex_options: Mapping[str, Any] | None = None,
    synerise_options: Mapping[str, Any] | None = None,
) -> tuple[VtexSandbox, SyneriseSandbox]:
    """Both emulators, each with its own `FaultInjector` carrying the ``faults`` rules.

    Raises:
        ValueError: a bad fault rule.
    """
    vtex_faults = FaultInjector(seed, error_body=vtex_error_body)
    synerise_faults = FaultInjector(seed)
    apply_faults(faults, vtex_faults, synerise_faults)
    vtex = VtexSandbox(
        dataset, app_key, app_token, account, vtex_faults, **dict(vtex_options or {})
    )
    synerise = SyneriseSandbox(
        api_key=api_key, faults=synerise_faults, seed=seed, **dict(synerise_options or {})
    )
    return vtex, synerise


def start_sandbox(
    customers: int = 1000,
    orders: int = 2000,
    seed: int = 0,
    fixtures: str | Path | None = None,
    faults: FaultRules = (),
    *,
    dirty_share: float = 0.05,
    products: int = 60,
    account: str = "sandbox",
    app_key: str = DEFAULT_APP_KEY,
    app_token: str = DEFAULT_APP_TOKEN,
    api_key: str = SANDBOX_API_KEY,
    host: str = "127.0.0.1",
    vtex_port: int = 0,
    synerise_port: int = 0,
    vtex_options: Mapping[str, Any] | None = None,
    synerise_options: Mapping[str, Any] | None = None,
) -> Sandbox:
    """Start the VTEX and Synerise emulators on loopback (free ports by default).

    Args:
        customers, orders, seed, dirty_share, products: the generated data (see
            `etl.sandbox.data`; each product has 1-3 SKUs).
        fixtures: serve the VTEX documents in this directory instead (`FixtureDataset`).
        faults: fault rules applied to both servers (route names differ, so ``oms.*`` only
            touches VTEX and ``*`` both).
        account, app_key, app_token: the VTEX account and the only accepted key pair.
        api_key: the Synerise workspace API key.
        host, vtex_port, synerise_port: where to listen.
        vtex_options, synerise_options: extra keyword arguments of `VtexSandbox` /
            `SyneriseSandbox` (e.g. ``{"scroll_ttl": 5}``).

    Raises:
        ValueError: bad data arguments, fixtures or fault rules.
        OSError: a port cannot be bound.
    """
    dataset = build_dataset(customers, orders, seed, fixtures, dirty_share, account, products)
    vtex, synerise = build_emulators(
        dataset,
        faults,
        seed=seed,
        account=account,
        app_key=app_key,
        app_token=app_token,
        api_key=api_key,
        vtex_options=vtex_options,
        synerise_options=synerise_options,
    )
    vtex_server = SandboxServer(vtex.make_app(), host, vtex_port).start()
    try:
        synerise_server = SandboxServer(synerise.make_app(), host, synerise_port).start()
    except BaseException:
        vtex_server.stop()
        raise
    return Sandbox(dataset, vtex, synerise, vtex_server, synerise_server)
