"""Enrichment: the merchant's own hooks, and declarative attribute rules, applied to every mapped
payload before it is diffed and sent (``docs/enrichers.md``).

An *enricher* is a function ``enricher(kind, document, payload) -> payload``:

* ``kind``: ``"profile"`` (``document`` is the Master Data ``CL`` document, ``payload`` the
  ``/v4/clients/batch`` item) or ``"transaction"`` (``document`` is the OMS order, ``payload`` the
  ``/v4/transactions/batch`` item);
* it returns the payload to send, usually the one it was given with ``attributes`` (profiles) or
  ``metadata`` (transactions) added; ``None`` means "the payload I was given, as I changed it";
* it raises `Veto` to keep the record from Synerise (rejected as ``VETOED`` with the reason);
  any other exception rejects that record as ``ENRICHMENT_ERROR``, never its batch.

Enrichers come from the ``vtex_synerise.enrichers`` entry-point group of installed packages, or
from ``ENRICHERS`` (entry-point names or ``package.module:function`` paths, in the order to run;
``none`` for none). They run in worker threads, so they must be thread-safe, and must not change
``document``. After them, ``ATTRIBUTES_EXCLUDE``, ``ATTRIBUTES_INCLUDE`` and ``ATTRIBUTES_RENAME``
shape the ``attributes`` / ``metadata`` map (`AttributeRules`).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from etl.errors import SkippableRecordError
from etl.redaction import redact_text
from schemas.reasons import RejectReason

__all__ = [
    "ATTRIBUTE_MAPS",
    "ENTRY_POINT_GROUP",
    "AttributeRules",
    "Enricher",
    "Enrichment",
    "NamedEnricher",
    "Veto",
    "load_enrichers",
]

ENTRY_POINT_GROUP = "vtex_synerise.enrichers"

ATTRIBUTE_MAPS: Mapping[str, str] = {"profile": "attributes", "transaction": "metadata"}
"""The payload key holding each kind's free-form attributes."""

Enricher = Callable[[str, Mapping[str, Any], dict[str, Any]], "dict[str, Any] | None"]

_MESSAGE_LIMIT = 300


class Veto(Exception):
    """Raised by an enricher: do not send this record. ``reason`` is stored with the reject
    (``VETOED``) and shown by ``sync rejects``; keep personal data out of it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class NamedEnricher:
    """An enricher and the name rejects and logs call it by."""

    name: str
    func: Enricher


def load_enrichers(names: Sequence[str] | None) -> tuple[NamedEnricher, ...]:
    """The enrichers to run, in order.

    Args:
        names: ``None``: every entry point of the ``vtex_synerise.enrichers`` group, by name.
            Otherwise each is an entry-point name of that group or a ``package.module:function``
            (or ``package.module.function``) path.

    Raises:
        ValueError: one line naming what cannot be loaded and why.
    """
    installed = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    wanted = sorted(installed) if names is None else list(names)
    loaded = []
    for name in wanted:
        try:
            func = installed[name].load() if name in installed else _import(name)
        except Exception as error:  # any import-time failure is the user's to fix
            raise ValueError(f"{name!r}: {type(error).__name__}: {error}") from None
        if not callable(func):
            raise ValueError(f"{name!r} is not callable")
        loaded.append(NamedEnricher(name, func))
    return tuple(loaded)


def _import(path: str) -> Any:
    module_name, colon, attribute = path.partition(":")
    if not colon:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ImportError(
            f"not an installed {ENTRY_POINT_GROUP} entry point nor a package.module:function path"
        )
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


@dataclass(frozen=True)
class AttributeRules:
    """Declarative shaping of a payload's ``attributes`` (profiles) or ``metadata``
    (transactions), applied after the enrichers, in this order:

    1. ``exclude``: these names are dropped;
    2. ``include``: when given, only these names are kept;
    3. ``rename``: ``(old, new)`` pairs; a name is renamed after include/exclude saw it.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude or self.rename)

    def apply(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """The shaped copy of an attribute map."""
        included, excluded, renamed = set(self.include), set(self.exclude), dict(self.rename)
        shaped = {}
        for name, value in attributes.items():
            if name in excluded or (included and name not in included):
                continue
            shaped[renamed.get(name, name)] = value
        return shaped


@dataclass(frozen=True)
class Enrichment:
    """The enrichers and attribute rules of one configuration (``MappingConfig.enrichment``)."""

    enrichers: tuple[NamedEnricher, ...] = ()
    rules: AttributeRules = dataclasses.field(default_factory=AttributeRules)

    def apply(
        self, kind: str, key: str, document: Mapping[str, Any], payload: dict[str, Any]
    ) -> dict[str, Any]:
        """The payload after every enricher and the attribute rules.

        Raises:
            SkippableRecordError: ``VETOED`` (an enricher's `Veto`) or ``ENRICHMENT_ERROR`` (an
                enricher raised, returned something other than a dict, or left a payload that
                is not JSON), for this record only.
        """
        for enricher in self.enrichers:
            payload = _run(enricher, kind, key, document, payload)
        if self.enrichers:
            try:  # caught here, it rejects one record; in the ledger's hash, the whole chunk
                json.dumps(payload, allow_nan=False)
            except (TypeError, ValueError) as error:
                raise _error(key, f"the enriched payload is not JSON: {error}") from None
        field = ATTRIBUTE_MAPS[kind]
        if self.rules and isinstance(payload.get(field), Mapping):
            shaped = self.rules.apply(payload[field])
            payload = {k: v for k, v in payload.items() if k != field}
            if shaped:
                payload[field] = shaped
        return payload


def _run(
    enricher: NamedEnricher,
    kind: str,
    key: str,
    document: Mapping[str, Any],
    payload: dict[str, Any],
) -> dict[str, Any]:
    try:
        result = enricher.func(kind, document, payload)
    except Veto as veto:
        raise SkippableRecordError(
            RejectReason.VETOED, _clip(f"{enricher.name}: {veto.reason}"), key
        ) from None
    except Exception as error:  # the hook's bug rejects its record (kept), never the batch
        raise _error(key, f"{enricher.name} raised {type(error).__name__}: {error}") from None
    if result is None:
        return payload
    if not isinstance(result, dict):
        raise _error(key, f"{enricher.name} returned {type(result).__name__}, not a dict")
    return result


def _error(key: str, message: str) -> SkippableRecordError:
    return SkippableRecordError(RejectReason.ENRICHMENT_ERROR, _clip(message), key)


def _clip(message: str) -> str:
    """A stored message: personal data masked, one line, bounded."""
    text = " ".join(redact_text(message).split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"
