"""Which connection, and which VTEX account, an order notification belongs to (multistore).

A VTEX Orders Hook notification names the account its order belongs to (``Origin.Account``).
The connection whose webhook received it is not always the one to serve it:

* its own account (or none named): that connection, its own account;
* another connection's VTEX account: that connection (its credentials, its workspace);
* a ``VTEX_SUB_ACCOUNTS`` entry of a connection (the receiving one first): that connection, the
  order read from the sub-account's host with the connection's credentials (VTEX accepts a
  main account's app key on its sub-accounts when the key's role is granted there too);
* anything else: the receiving connection, its own account, as before connections (logged).
"""

from __future__ import annotations

import logging

from etl.sync.engine import Engine
from etl.sync.engines import Engines
from etl.vtex.client import VtexClient

__all__ = ["route_order"]

log = logging.getLogger(__name__)


def route_order(
    engines: Engines, receiving: Engine, origin_account: str | None
) -> tuple[Engine, VtexClient]:
    """The engine to serve an order of ``origin_account`` and the client to read it with."""
    if not origin_account or origin_account == receiving.settings.vtex_account:
        return receiving, receiving.vtex
    candidates = [receiving, *(e for e in engines if e is not receiving)]
    for engine in candidates:
        if engine.settings.vtex_account == origin_account:
            return engine, engine.vtex
    for engine in candidates:
        if origin_account in dict(engine.settings.vtex_sub_accounts):
            return engine, engine.sub_account(origin_account)
    log.warning(
        "order of account %r: no connection has it as its account or a sub-account; read "
        "from %r (add it to VTEX_SUB_ACCOUNTS)",
        origin_account,
        receiving.settings.vtex_account,
    )
    return receiving, receiving.vtex
