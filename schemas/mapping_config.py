"""What a store configures about the mapping: one frozen `MappingConfig`, made from the settings."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from etl.config import SOURCE_RULE_FIELDS, TRANSACTION_SOURCES, SourceRule
from etl.errors import ConfigError
from schemas.enrichment import AttributeRules, Enrichment, load_enrichers
from schemas.rules import is_valid_attribute_name

if TYPE_CHECKING:
    from etl.config import Settings

__all__ = ["TRANSACTION_METADATA_KEYS", "CentsDivisorMode", "MappingConfig"]

CentsDivisorMode = Literal["always_100", "decimal_digits"]

TRANSACTION_METADATA_KEYS = frozenset(
    {
        "status", "salesChannel", "origin", "affiliateId", "orderGroup", "sellerId",
        "sellerName", "coupon", "utmSource", "utmMedium", "utmCampaign", "shipping", "tax",
        "discounts", "orderValue",
    }
)  # fmt: skip
"""The ``metadata`` keys of a transaction that come from the order itself."""

_SALT_NAMESPACE_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")


@dataclass(frozen=True)
class MappingConfig:
    """What a store configures about the mapping (``PROFILE_*`` / ``ORDER_*`` / ``SYNERISE_*``).

    Attributes:
        phone_fields: ``CL`` fields tried in order; the first non-blank one is the phone.
        extra_attributes: ``CL`` fields copied into the profile's ``attributes``.
        order_customer_attributes: ``CL`` fields copied into each transaction's ``metadata``.
        store_base_url: the storefront, e.g. ``https://www.example.com``, for product URLs.
        salt_namespace: prefix of every ``eventSalt``; give each VTEX account feeding the same
            Synerise workspace its own, because a salt must be unique per workspace. Changing it
            later makes every order a new transaction (duplicates), so set it once.
        cents_divisor_mode: how VTEX integer money becomes currency units; see
            `schemas.transactions.transaction_from_order`.
        transaction_source: the ``source`` of a transaction no rule matches.
        transaction_source_rules: ``(order field, value, source)`` rules, tried in order; the
            first whose field equals its value gives the ``source``.
        guest_profiles: send a minimal profile for a buyer without a ``CL`` document
            (`schemas.profiles.guest_profile_from_order`).
        enrichment: the enrichers and attribute rules applied to every mapped profile and
            transaction (`schemas.enrichment`).
    """

    phone_fields: tuple[str, ...] = ("phone", "homePhone", "cellPhone", "businessPhone")
    extra_attributes: tuple[str, ...] = ()
    order_customer_attributes: tuple[str, ...] = ()
    store_base_url: str | None = None
    salt_namespace: str = "vtex"
    cents_divisor_mode: CentsDivisorMode = "always_100"
    transaction_source: str = "WEB_DESKTOP"
    transaction_source_rules: tuple[SourceRule, ...] = ()
    guest_profiles: bool = True
    enrichment: Enrichment = dataclasses.field(default_factory=Enrichment)

    def __post_init__(self) -> None:
        for name in ("phone_fields", "extra_attributes", "order_customer_attributes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # lists from settings
        object.__setattr__(
            self, "transaction_source_rules", tuple(map(tuple, self.transaction_source_rules))
        )
        for name in self.extra_attributes:
            if not is_valid_attribute_name(name):
                raise ValueError(
                    f"extra_attributes: {name!r} is reserved by Synerise or has characters it"
                    " forbids in attribute names; Synerise would ignore it"
                )
        for name in self.order_customer_attributes:
            if name in TRANSACTION_METADATA_KEYS:
                raise ValueError(
                    f"order_customer_attributes: {name!r} would overwrite the transaction"
                    f" metadata key of the same name (taken: {sorted(TRANSACTION_METADATA_KEYS)})"
                )
        if not _SALT_NAMESPACE_RE.fullmatch(self.salt_namespace):
            raise ValueError(
                f"salt_namespace: expected 1-32 of A-Z a-z 0-9 . _ -, got {self.salt_namespace!r}"
            )
        if self.cents_divisor_mode not in ("always_100", "decimal_digits"):
            raise ValueError(
                "cents_divisor_mode: expected 'always_100' or 'decimal_digits',"
                f" got {self.cents_divisor_mode!r}"
            )
        for field, value, source in (
            ("", "", self.transaction_source),
            *self.transaction_source_rules,
        ):
            if source not in TRANSACTION_SOURCES or field not in ("", *SOURCE_RULE_FIELDS):
                raise ValueError(
                    f"transaction source: expected a field of {SOURCE_RULE_FIELDS} and a source"
                    f" of {TRANSACTION_SOURCES}, got {field!r}={value!r} -> {source!r}"
                )
        _check_rules(self.enrichment.rules)
        if self.store_base_url is not None:
            if not self.store_base_url.startswith(("https://", "http://")):
                raise ValueError(
                    f"store_base_url: expected an http(s) URL, got {self.store_base_url!r}"
                )
            object.__setattr__(self, "store_base_url", self.store_base_url.rstrip("/"))

    @classmethod
    def from_settings(cls, settings: Settings) -> MappingConfig:
        """The mapping part of the project's settings; loads the enrichers.

        Raises:
            ConfigError: an enricher cannot be loaded (``ENRICHERS``), or an attribute rule
                would make a payload Synerise cannot take (``ATTRIBUTES_RENAME``).
        """
        try:
            enrichers = load_enrichers(settings.enrichers)
        except ValueError as error:
            raise ConfigError(
                "ENRICHERS",
                "installed vtex_synerise.enrichers entry points or importable"
                " package.module:function paths",
                str(error),
            ) from None
        rules = AttributeRules(
            settings.attributes_include, settings.attributes_exclude, settings.attributes_rename
        )
        try:
            _check_rules(rules)
        except ValueError as error:
            raise ConfigError("ATTRIBUTES_RENAME", "names Synerise accepts", str(error)) from None
        return cls(
            enrichment=Enrichment(enrichers, rules),
            phone_fields=settings.profile_phone_fields,
            extra_attributes=settings.profile_extra_attributes,
            order_customer_attributes=settings.order_customer_attributes,
            store_base_url=settings.store_base_url,
            salt_namespace=settings.synerise_salt_namespace,
            cents_divisor_mode=settings.vtex_cents_divisor_mode,  # type: ignore[arg-type]
            transaction_source=settings.synerise_transaction_source,
            transaction_source_rules=settings.synerise_transaction_source_map,
            guest_profiles=settings.synerise_guest_profiles,
        )

    @property
    def profile_source_fields(self) -> tuple[str, ...]:
        """The ``CL`` fields `profile_from_customer` reads (for Master Data ``_fields``)."""
        return tuple(
            dict.fromkeys(
                ("id", "userId", "email", "firstName", "lastName", *self.phone_fields,
                 "birthDate", "gender", "isNewsletterOptIn", *self.extra_attributes)
            )
        )  # fmt: skip

    @property
    def order_customer_fields(self) -> tuple[str, ...]:
        """The buyer's ``CL`` fields `transaction_from_order` reads."""
        return tuple(dict.fromkeys(("id", "userId", "email", *self.order_customer_attributes)))


def _check_rules(rules: AttributeRules) -> None:
    """Refuse a rename Synerise would ignore (a reserved or malformed profile attribute name) or
    one that would overwrite a transaction's own ``metadata`` key."""
    for old, new in rules.rename:
        if not is_valid_attribute_name(new):
            raise ValueError(f"{old}:{new}: {new!r} is reserved by Synerise or malformed")
        if new in TRANSACTION_METADATA_KEYS:
            raise ValueError(f"{old}:{new}: {new!r} would overwrite a transaction metadata key")
