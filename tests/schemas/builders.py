"""Small VTEX documents for the mapping tests, and assertions they share."""

from __future__ import annotations

from typing import Any

import pytest

from etl.errors import SkippableRecordError

HARD_ALIAS = "ff2e63a9bd47441795a0d5e01cb91328@ct.vtex.com.br"
SOFT_ALIAS = "rodrigo.smith@email.com-207700027841b.ct.vtex.com.br"


def order(**overrides: Any) -> dict[str, Any]:
    """A small, self-contained Get order response."""
    base: dict[str, Any] = {
        "orderId": "v502556llux-01",
        "creationDate": "2024-02-04T20:09:43.8999580+00:00",
        "lastChange": "2024-02-06T20:46:11.7010747+00:00",
        "status": "invoiced",
        "value": 5980,
        "totals": [
            {"id": "Items", "name": "Total dos Itens", "value": 6980},
            {"id": "Discounts", "name": "Total dos Descontos", "value": -1000},
            {"id": "Shipping", "name": "Total do Frete", "value": 0},
        ],
        "items": [
            item("1", "Blue shirt", quantity=2, selling=1990, listed=2490),
            item("2", "Red shirt", quantity=1, selling=2000, listed=2000),
        ],
        "storePreferencesData": {
            "currencyCode": "BRL",
            "currencyFormatInfo": {"CurrencyDecimalDigits": 2},
        },
        "clientProfileData": {"email": HARD_ALIAS, "userProfileId": "user-1"},
        "paymentData": {
            "transactions": [
                {"payments": [{"paymentSystemName": "Pix", "group": "instantPayment"}]}
            ]
        },
        "marketingData": None,
        "salesChannel": "1",
        "orderGroup": "v502556llux",
        "hostname": "luxstore",
    }
    base.update(overrides)
    return base


def item(sku: str, name: str, *, quantity: int, selling: int, listed: int) -> dict[str, Any]:
    return {
        "id": sku,
        "productId": f"p{sku}",
        "refId": f"REF-{sku}",
        "name": name,
        "quantity": quantity,
        "price": listed,
        "listPrice": listed,
        "sellingPrice": selling,
        "imageUrl": f"https://luxstore.vteximg.com.br/ids/{sku}-55-55/img.jpg",
        "detailUrl": f"/{name.lower().replace(' ', '-')}/p",
        "additionalInfo": {"brandName": "Lux", "categories": [{"id": 9, "name": "Shirts"}]},
    }


def customer(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "cl-doc-1",
        "userId": "user-1",
        "email": "ana.silva@example.com",
        "firstName": "Ana",
        "lastName": "Silva",
        "phone": "+5511987654321",
        "homePhone": None,
        "cellPhone": None,
        "businessPhone": None,
        "birthDate": "1990-05-17T00:00:00Z",
        "gender": "female",
        "isNewsletterOptIn": True,
        "createdIn": "2023-01-01T10:00:00.000Z",
        "updatedIn": "2024-01-01T10:00:00.000Z",
    }
    base.update(overrides)
    return base


def rejected(call: Any, *args: Any, **kwargs: Any) -> SkippableRecordError:
    with pytest.raises(SkippableRecordError) as caught:
        call(*args, **kwargs)
    return caught.value


def has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(has_null(inner) for inner in value.values())
    if isinstance(value, list):
        return any(has_null(inner) for inner in value)
    return False
