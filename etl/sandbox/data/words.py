"""Word lists and weighted picks the generator draws names, products, statuses and payments from."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    # locale: (female first names, male first names, last names)
    "pt-BR": (
        ("Ana", "Maria", "Juliana", "Fernanda", "Beatriz", "Camila", "Larissa", "Patrícia"),
        ("João", "Pedro", "Lucas", "Rafael", "Gustavo", "Thiago", "Bruno", "André"),
        ("Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Rodrigues", "Almeida",
         "Nascimento", "Lima", "Araújo", "Fernandes"),
    ),
    "es-CL": (
        ("Sofía", "Valentina", "Isidora", "Florencia", "Catalina", "Antonia"),
        ("Matías", "Benjamín", "Vicente", "Martín", "Joaquín", "Tomás"),
        ("González", "Muñoz", "Rojas", "Díaz", "Pérez", "Soto", "Contreras", "Silva"),
    ),
    "en-US": (
        ("Emily", "Olivia", "Emma", "Ava", "Mia", "Harper"),
        ("James", "Michael", "Daniel", "Ethan", "Noah", "Liam"),
        ("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson"),
    ),
}  # fmt: skip

LOCALES = (("pt-BR", 0.7), ("es-CL", 0.15), ("en-US", 0.15))

UNICODE_NAMES = (
    ("山田", "太郎"), ("Олена", "Коваль"), ("Nguyễn", "Thị Hương"), ("Zoë", "Ñúñez-Łukasik"),
    ("محمد", "الأحمد"), ("Ἀλέξανδρος", "Παπαδόπουλος"), ("Søren", "Kierkegård"),
    ("Ana 🌸", "Souza ✨"), ("김", "민준"), ("Ζωή", "O'Brien-Ångström"),
)  # fmt: skip

DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com.br")

PHONE_FORMATS = {
    "pt-BR": lambda r: f"+55 {r.randint(11, 99)} 9{r.randint(1000, 9999)}-{r.randint(1000, 9999)}",
    "es-CL": lambda r: f"+56 9 {r.randint(1000, 9999)} {r.randint(1000, 9999)}",
    "en-US": lambda r: f"+1 ({r.randint(201, 989)}) {r.randint(200, 999)}-{r.randint(1000, 9999)}",
}

DOCUMENT_TYPES = {"pt-BR": "cpf", "es-CL": "rut", "en-US": "ssn"}

CATEGORIES = (
    # (department id, department name, category id, category name)
    (1, "Apparel", 10, "T-Shirts"), (1, "Apparel", 11, "Trousers"),
    (2, "Electronics", 20, "Phones"), (2, "Electronics", 21, "Headphones"),
    (3, "Home", 30, "Kitchen"), (3, "Home", 31, "Decor"),
    (4, "Toys", 40, "Board Games"), (5, "Sports", 50, "Running"),
)  # fmt: skip

BRANDS = ((2000001, "Acme"), (2000002, "Lumen"), (2000003, "Norte"), (2000004, "Kiwi & Co"))

ADJECTIVES = ("Classic", "Urban", "Essential", "Premium", "Compact", "Bold", "Soft", "Eco")

NOUNS = {
    10: "T-Shirt", 11: "Chino", 20: "Smartphone", 21: "Earbuds",
    30: "Frying Pan", 31: "Vase", 40: "Strategy Game", 50: "Running Shoe",
}  # fmt: skip

VARIANTS = ("S", "M", "L", "Blue", "Black", "White")

ITEM_DIMENSION = {"cubicweight": 1.0, "height": 10, "length": 20, "weight": 500, "width": 15}

CURRENCIES: dict[str, dict[str, Any]] = {
    # cents per BRL cent, decimals, symbol, country, LCID, time zone
    "BRL": {"rate": 1.0, "digits": 2, "symbol": "R$", "country": "BRA", "locale": 1046,
            "tz": "E. South America Standard Time", "sep": (",", ".")},
    "USD": {"rate": 0.2, "digits": 2, "symbol": "$", "country": "USA", "locale": 1033,
            "tz": "Eastern Standard Time", "sep": (".", ",")},
    "EUR": {"rate": 0.18, "digits": 2, "symbol": "€", "country": "PRT", "locale": 2070,
            "tz": "GMT Standard Time", "sep": (",", ".")},
    "CLP": {"rate": 170.0, "digits": 0, "symbol": "$", "country": "CHL", "locale": 13322,
            "tz": "Pacific SA Standard Time", "sep": (",", ".")},
    "JPY": {"rate": 28.0, "digits": 0, "symbol": "¥", "country": "JPN", "locale": 1041,
            "tz": "Tokyo Standard Time", "sep": (".", ",")},
}  # fmt: skip

STATUSES = (
    # (status, share, description as OMS shows it)
    ("invoiced", 0.55, "Faturado"),
    ("handling", 0.1, "Preparando Entrega"),
    ("ready-for-handling", 0.1, "Pronto para o manuseio"),
    ("payment-approved", 0.1, "Pagamento Aprovado"),
    ("payment-pending", 0.1, "Pagamento Pendente"),
    ("window-to-cancel", 0.05, "Carência para Cancelamento"),
)

STATUS_DESCRIPTIONS = {status: text for status, _, text in STATUSES} | {
    "canceled": "Cancelado",
    "cancellation-requested": "Cancelamento Solicitado",
    "order-created": "Processando",
    "start-handling": "Iniciar Manuseio",
}

AUTHORIZED_STATUSES = frozenset(
    {"payment-approved", "window-to-cancel", "ready-for-handling", "handling", "invoiced"}
)

PAYMENTS = (
    ("2", "Visa", "creditCard"), ("4", "Mastercard", "creditCard"),
    ("6", "Boleto Bancário", "bankInvoice"), ("125", "Pix", "instantPayment"),
    ("16", "Vale", "giftCard"),
)  # fmt: skip

UTM = (("google", "cpc", "black-friday"), ("newsletter", "email", "weekly"),
        ("instagram", "social", "summer"), ("fb", "paid-social", "christmas"))  # fmt: skip


@functools.lru_cache(maxsize=4096)
def ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "", folded.lower())
    return slug or "user"


def pick_weighted(u: float, table: Sequence[tuple[Any, float, Any]] | Sequence[Any]) -> Any:
    acc = 0.0
    for row in table:
        acc += row[1]
        if u < acc:
            return row
    return table[-1]
