"""Generated Master Data ``CL`` documents (see the package docstring for their defects)."""

from __future__ import annotations

import re

from etl.sandbox.data.generated import GeneratedData
from etl.sandbox.data.rng import Rng
from etl.sandbox.data.source import Doc, check_index
from etl.sandbox.data.timefmt import format_md_time
from etl.sandbox.data.words import (
    DOCUMENT_TYPES,
    DOMAINS,
    LOCALES,
    NAMES,
    PHONE_FORMATS,
    UNICODE_NAMES,
    ascii_slug,
    pick_weighted,
)

_EMAIL_CHANGING = frozenset(
    {"invalid_email", "missing_identifier", "duplicate_email", "masked_email"}
)

MAX_CUSTOMERS = 2**48 - 1  # the last UUID group encodes the index

MASK_DOMAIN = "ct.vtex.com.br"


class CustomerGenerator(GeneratedData):
    """Customers: ``createdIn`` grows with the index; ``updatedIn`` lags it by a bounded delay."""

    def _customer_updated(self, i: int) -> int:
        created = self._customer_fields["createdIn"].timeline.base(i)
        if self._h.unit("customer.updated", i) < 0.4:
            return created + 1 + self._h("customer.delay", i) % self.max_update_delay_ms
        return created

    def _duplicate_partner(self, i: int) -> int | None:
        """The earlier customer whose e-mail a ``duplicate_email`` customer reuses."""
        first = i - 1 - self._h("customer.partner", i) % 8
        for p in range(first, max(-1, first - 17), -1):
            if p >= 0 and self._raw_kind("customer", p) not in _EMAIL_CHANGING:
                return p
        return None

    def _identity(self, i: int) -> tuple[str, str, str, str, str]:
        """``(locale, gender, firstName, lastName, base e-mail)``: cheap, no full document."""
        rng = Rng(self._h("rng.customer-id", i))
        locale = pick_weighted(rng.random(), LOCALES)[0]
        female, male, last_names = NAMES[locale]
        gender = "female" if rng.random() < 0.5 else "male"
        first = rng.choice(female if gender == "female" else male)
        last = rng.choice(last_names)
        email = f"{ascii_slug(first)}.{ascii_slug(last)}.{i}@{rng.choice(DOMAINS)}"
        return locale, gender, first, last, email

    def _customer_email(self, i: int, kind: str | None) -> str | None:
        email = self._identity(i)[4]
        if kind == "missing_identifier":
            return None
        if kind == "duplicate_email":
            partner = self._duplicate_partner(i)
            return self._identity(partner)[4] if partner is not None else email
        if kind == "masked_email":
            return self._alias(i)
        if kind == "invalid_email":
            local, _, domain = email.partition("@")
            variant = self._h("customer.email_variant", i) % 6
            return (
                f"{local}@{domain.split('.')[0]}",  # no TLD
                f"{local}@@{domain}",
                f"{local.replace('.', ' ', 1)}@{domain}",
                f"{local.replace('.', '..', 1)}@{domain}",
                f"{local}.{domain}",  # no @
                f"{local}@exämple.com",
            )[variant]
        return email

    def _alias(self, i: int) -> str:
        """A hard Conversation Tracker alias (32 hex digits) that encodes ``i`` invertibly."""
        hidden = i ^ self._h("customer.alias_key", 0)
        return f"{self._h('customer.alias', i):016x}{hidden:016x}@{MASK_DOMAIN}"

    def _alias_index(self, value: str) -> int | None:
        match = re.fullmatch(r"[0-9a-f]{16}([0-9a-f]{16})@ct\.vtex\.com\.br", value)
        if match is None:
            return None
        i = int(match.group(1), 16) ^ self._h("customer.alias_key", 0)
        return i if i < self.customer_count and self._alias(i) == value else None

    def customer(self, i: int) -> Doc:
        check_index(i, self.customer_count, "customer")
        kind = self.dirty_kind("customer", i)
        locale, gender, first, last, _ = self._identity(i)
        rng = Rng(self._h("rng.customer", i))
        phone_of = PHONE_FORMATS[locale]
        phone = phone_of(rng) if rng.random() < 0.8 else None
        home = phone_of(rng) if rng.random() < 0.2 else None
        birth: str | None = None
        if rng.random() < 0.7:
            birth = f"{rng.randint(1940, 2006)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if kind == "unicode_names":
            first, last = rng.choice(UNICODE_NAMES)
        elif kind == "empty_names":
            first, last = "", "  "
        elif kind == "phone_with_letters":
            phone = "+55 11 9ABC-4321" if rng.random() < 0.5 else "call me 555-0199"
        elif kind == "phone_too_long":
            phone = "+55 11 98765-4321-0000-1111" if rng.random() < 0.5 else "0" * 24
        elif kind == "phone_only_secondary":
            phone, home = ("" if rng.random() < 0.5 else None), None
        elif kind == "invalid_birthdate":
            birth = rng.choice(("1985-02-30", "1899-12-31", "2999-01-01", "31/12/1990"))
        cell = phone_of(rng) if kind == "phone_only_secondary" else None
        created = self._customer_fields["createdIn"].timeline.base(i)
        updated = self._customer_updated(i)
        user_id = None if kind == "missing_identifier" else self._uuid("user", i)
        newsletter = rng.random() < 0.45
        return {
            "id": self._uuid("cl", i),
            "accountId": self.account_id,
            "accountName": self.account,
            "dataEntityId": "CL",
            "userId": user_id,
            "email": self._customer_email(i, kind),
            "firstName": first,
            "lastName": last,
            "gender": gender,
            "birthDate": f"{birth}T00:00:00Z" if birth and "/" not in birth else birth,
            "phone": phone,
            "homePhone": home,
            "cellPhone": cell,
            "businessPhone": None,
            "document": f"{rng.randint(0, 10**11 - 1):011d}",
            "documentType": DOCUMENT_TYPES[locale],
            "isCorporate": False,
            "corporateName": None,
            "tradeName": None,
            "corporateDocument": None,
            "stateRegistration": None,
            "isNewsletterOptIn": newsletter,
            "localeDefault": locale,
            "profilePicture": None,
            "createdIn": format_md_time(created),
            "createdBy": None,
            "updatedIn": format_md_time(updated),
            "updatedBy": None,
        }

    def find_customers(self, field: str, value: str) -> list[int]:
        if field == "id":
            i = self._uuid_index("cl", value)
            return [i] if i is not None and i < self.customer_count else []
        if field == "userId":
            i = self._uuid_index("user", value)
            if i is None or i >= self.customer_count:
                return []
            return [i] if self._raw_kind("customer", i) != "missing_identifier" else []
        if field != "email":
            raise ValueError(f"find_customers supports id, userId and email, not {field!r}")
        alias = self._alias_index(value)
        if alias is not None:
            return [alias] if self.dirty_kind("customer", alias) == "masked_email" else []
        found: set[int] = set()
        for token in re.findall(r"\d+", value):
            p = int(token)
            if p >= self.customer_count:
                continue
            for j in range(p, min(self.customer_count, p + 26)):
                if self._customer_email(j, self.dirty_kind("customer", j)) == value:
                    found.add(j)
        return sorted(found)
