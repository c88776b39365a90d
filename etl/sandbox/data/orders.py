"""Generated OMS Get order documents, and helpers that keep an order's totals consistent."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from etl.sandbox.data.catalog import SKUS_PER_PRODUCT, CatalogGenerator
from etl.sandbox.data.customers import MASK_DOMAIN, CustomerGenerator
from etl.sandbox.data.rng import Rng
from etl.sandbox.data.source import Doc, check_index
from etl.sandbox.data.timefmt import DAY_MS, format_oms_time
from etl.sandbox.data.words import (
    AUTHORIZED_STATUSES,
    CURRENCIES,
    DOCUMENT_TYPES,
    DOMAINS,
    ITEM_DIMENSION,
    LOCALES,
    NAMES,
    PAYMENTS,
    PHONE_FORMATS,
    STATUS_DESCRIPTIONS,
    STATUSES,
    UTM,
    VARIANTS,
    ascii_slug,
    pick_weighted,
)

_SEQUENCE_BASE = 10_000_000

MAX_ORDERS = 89_999_999  # eight-digit sequences keep order ids sorted like their indices


def zero_line(item: Doc) -> None:
    """Mark an order line as removed: quantity 0, nothing charged."""
    item["quantity"] = 0
    item["priceDefinitions"]["sellingPrices"] = []
    item["priceDefinitions"]["total"] = 0


def set_order_money(order: Doc, shipping: int | None = None, tax: int | None = None) -> None:
    """Recompute ``totals`` and ``value`` from the order's lines (after a line change)."""
    old = {t["id"]: t["value"] for t in order.get("totals") or ()}
    shipping = old.get("Shipping", 0) if shipping is None else shipping
    tax = old.get("Tax", 0) if tax is None else tax
    items = sum(item["price"] * item["quantity"] for item in order["items"])
    discounts = sum(
        (item["sellingPrice"] - item["price"]) * item["quantity"] for item in order["items"]
    )
    order["totals"] = [
        {"id": "Items", "name": "Total dos Itens", "value": items},
        {"id": "Discounts", "name": "Total dos Descontos", "value": discounts},
        {"id": "Shipping", "name": "Total do Frete", "value": shipping},
        {"id": "Tax", "name": "Total da Taxa", "value": tax},
    ]
    order["value"] = items + discounts + shipping + tax
    for transaction in (order.get("paymentData") or {}).get("transactions") or ():
        for payment in transaction.get("payments") or ():
            payment["value"] = payment["referenceValue"] = order["value"]


class OrderGenerator(CustomerGenerator, CatalogGenerator):
    """Orders: buyers are generated customers (or guests), lines are catalog SKUs."""

    def _order_created(self, i: int) -> int:
        return self._order_fields["creationDate"].timeline.base(i)

    def order_status(self, i: int) -> str:
        if self.dirty_kind("order", i) == "canceled":
            return "canceled"
        return str(pick_weighted(self._h.unit("order.status", i), STATUSES)[0])

    def _order_authorized(self, i: int) -> int | None:
        status = self.order_status(i)
        paid = status in AUTHORIZED_STATUSES or (
            status == "canceled" and self._h("order.auth_canceled", i) % 2 == 0
        )
        if not paid:
            return None
        return self._order_created(i) + 60_000 + self._h("order.auth", i) % (2 * 3_600_000 - 60_000)

    def _order_invoiced(self, i: int) -> int | None:
        if self.order_status(i) != "invoiced":
            return None
        return self._order_created(i) + DAY_MS + self._h("order.inv", i) % (9 * DAY_MS)

    def _split_second(self, i: int) -> bool:
        """Order ``i`` is the ``-02`` of order ``i - 1``'s group (only odd, clean pairs)."""
        return (
            i % 2 == 1
            and self._h.unit("order.split", i) < 0.06
            and self._raw_kind("order", i) is None
            and self._raw_kind("order", i - 1) is None
        )

    def _order_id(self, i: int) -> tuple[str, str, str]:
        """``(orderId, orderGroup, sequence)``."""
        sequence = str(_SEQUENCE_BASE + i)
        if self._split_second(i):
            group = f"v{_SEQUENCE_BASE + i - 1}{self._order_tag}"
            return f"{group}-02", group, sequence
        group = f"v{sequence}{self._order_tag}"
        return f"{group}-01", group, sequence

    def order_index(self, order_id: str) -> int | None:
        match = re.fullmatch(r"seq(\d+)", order_id)
        if match:
            i = int(match.group(1)) - _SEQUENCE_BASE
            return i if 0 <= i < self.order_count else None
        match = re.fullmatch(r"v(\d{8})([a-z]*)-(\d{2})", order_id)
        if not match or match.group(2) != self._order_tag:
            return None
        i = int(match.group(1)) - _SEQUENCE_BASE + (1 if match.group(3) == "02" else 0)
        if not 0 <= i < self.order_count or self._order_id(i)[0] != order_id:
            return None
        return i

    def guest_order(self, i: int) -> bool:
        return self._order_customer(i) is None

    def _order_customer(self, i: int) -> int | None:
        """The registered buyer's customer index, None for a guest."""
        if self._split_second(i):
            return self._order_customer(i - 1)
        if self.customer_count == 0 or self.dirty_kind("order", i) in ("guest", "anonymous_guest"):
            return None
        created_so_far = math.ceil((i + 1) * self.customer_count / max(1, self.order_count))
        c = self._h("order.customer", i) % max(1, min(self.customer_count, created_so_far))
        for candidate in range(c, max(-1, c - 64), -1):
            if self._raw_kind("customer", candidate) != "missing_identifier":
                return candidate
        return None

    def order(self, i: int) -> Doc:
        check_index(i, self.order_count, "order")
        kind = self.dirty_kind("order", i)
        rng = Rng(self._h("rng.order", i))
        order_id, group, sequence = self._order_id(i)
        created = self._order_created(i)
        authorized, invoiced = self._order_authorized(i), self._order_invoiced(i)
        status = self.order_status(i)
        currency = self._order_currency(i, kind, rng)
        info = CURRENCIES[currency]
        buyer = self._buyer(i, kind, rng)

        items = [self._order_item(rng, currency) for _ in range(rng.randint(1, 4))]
        if kind == "removed_item":
            removed = self._order_item(rng, currency)
            zero_line(removed)
            items.append(removed)
        for item in items:
            item["lockId"] = f"00-{order_id}"
        shipping = 0 if rng.random() < 0.3 else self._money(rng.randint(990, 2990), currency)
        tax = self._money(rng.randint(100, 900), currency) if currency == "USD" else 0
        payment = rng.choice(PAYMENTS)
        coupon = rng.random() < 0.15
        marketing = None
        if rng.random() < 0.4 or coupon:
            source, medium, campaign = rng.choice(UTM)
            marketing = {
                "id": "marketingData",
                "utmSource": source,
                "utmPartner": "",
                "utmMedium": medium,
                "utmCampaign": campaign,
                "coupon": f"SAVE{rng.randint(5, 30)}" if coupon else "",
                "utmiCampaign": "",
                "utmipage": "",
                "utmiPart": "",
                "marketingTags": [],
            }
        last_change = max(t for t in (created + 90_000, authorized, invoiced) if t is not None)
        doc: Doc = {
            "orderId": order_id,
            "sequence": sequence,
            "marketplaceOrderId": "",
            "marketplaceServicesEndpoint": f"http://oms.vtexinternal.com.br/api/oms?an={self.account}",
            "sellerOrderId": f"00-{order_id}",
            "origin": "Marketplace",
            "affiliateId": "",
            "salesChannel": "1" if rng.random() < 0.9 else "2",
            "merchantName": None,
            "status": status,
            "workflowIsInError": False,
            "statusDescription": STATUS_DESCRIPTIONS.get(status, status),
            "value": 0,
            "creationDate": format_oms_time(created),
            "lastChange": format_oms_time(last_change),
            "orderGroup": group,
            "followUpEmail": f"{hashlib.md5(order_id.encode()).hexdigest()}@{MASK_DOMAIN}",
            "lastMessage": None,
            "hostname": self.account,
            "isCompleted": True,
            "roundingError": 0,
            "orderFormId": hashlib.md5(f"{self.seed}:form:{i}".encode()).hexdigest(),
            "allowCancellation": status not in ("invoiced", "canceled"),
            "allowEdition": False,
            "isCheckedIn": False,
            "authorizedDate": format_oms_time(authorized) if authorized is not None else None,
            "invoicedDate": format_oms_time(invoiced) if invoiced is not None else None,
            "cancelReason": "Customer request" if status == "canceled" else None,
            "checkedInPickupPointId": None,
            "totals": [],
            "sellers": [
                {
                    "id": "1",
                    "name": self.account.title(),
                    "logo": None,
                    "fulfillmentEndpoint": f"http://fulfillment.vtexcommerce.com.br/api/"
                    f"fulfillment?an={self.account}",
                }
            ],
            "clientPreferencesData": {
                "locale": buyer["locale"],
                "optinNewsLetter": buyer["optin"],
            },
            "cancellationData": None,
            "taxData": None,
            "subscriptionData": None,
            "marketplace": {
                "baseURL": f"http://oms.vtexinternal.com.br/api/oms?an={self.account}",
                "isCertified": None,
                "name": self.account,
            },
            "storePreferencesData": {
                "countryCode": info["country"],
                "currencyCode": currency,
                "currencyFormatInfo": {
                    "CurrencyDecimalDigits": info["digits"],
                    "CurrencyDecimalSeparator": info["sep"][0],
                    "CurrencyGroupSeparator": info["sep"][1],
                    "CurrencyGroupSize": 3,
                    "StartsWithCurrencySymbol": True,
                },
                "currencyLocale": info["locale"],
                "currencySymbol": info["symbol"],
                "timeZone": info["tz"],
            },
            "customData": None,
            "commercialConditionData": None,
            "openTextField": None,
            "invoiceData": None,
            "changesAttachment": None,
            "callCenterOperatorData": None,
            "packageAttachment": {"packages": []},
            "paymentData": {"giftCards": [], "transactions": []},
            "shippingData": self._shipping(rng, buyer, items, shipping),
            "ratesAndBenefitsData": {
                "id": "ratesAndBenefitsData",
                "rateAndBenefitsIdentifiers": [],
            },
            "marketingData": marketing,
            "giftRegistryData": None,
            "clientProfileData": buyer["profile"],
            "items": items,
            "marketplaceItems": [],
        }
        set_order_money(doc, shipping=shipping, tax=tax)
        doc["paymentData"]["transactions"] = [
            {
                "isActive": True,
                "transactionId": hashlib.md5(f"{self.seed}:tx:{i}".encode()).hexdigest().upper(),
                "merchantName": self.account,
                "payments": [
                    {
                        "id": hashlib.md5(f"{self.seed}:pay:{i}".encode()).hexdigest().upper(),
                        "paymentSystem": payment[0],
                        "paymentSystemName": payment[1],
                        "value": doc["value"],
                        "installments": 1 if payment[2] != "creditCard" else rng.randint(1, 6),
                        "referenceValue": doc["value"],
                        "group": payment[2],
                        "tid": str(rng.randint(10_000_000, 99_999_999)),
                    }
                ],
            }
        ]
        return doc

    def _order_currency(self, i: int, kind: str | None, rng: Rng) -> str:
        if kind == "zero_decimal_currency":
            return "CLP" if self._h("order.currency", i) % 2 == 0 else "JPY"
        u = self._h.unit("order.currency", i)
        return "BRL" if u < 0.8 else ("USD" if u < 0.9 else "EUR")

    @staticmethod
    def _money(brl_cents: int, currency: str) -> int:
        """An amount in the currency's "cents" (x100 for zero-decimal currencies too)."""
        value = brl_cents * CURRENCIES[currency]["rate"]
        return round(value / 100) * 100 if CURRENCIES[currency]["digits"] == 0 else round(value)

    def _buyer(self, i: int, kind: str | None, rng: Rng) -> dict[str, Any]:
        c = self._order_customer(i)
        if c is not None:
            customer = self.customer(c)
            email = customer["email"] or ""
            real = self._customer_email(c, None) or ""
            clean = email == real or self.dirty_kind("customer", c) == "duplicate_email"
            if clean and self._h.unit("order.soft", i) < 0.2:
                masked = f"{email}-{rng.randint(10, 99999999)}b.{MASK_DOMAIN}"
            else:
                masked = (
                    f"{hashlib.md5((email or customer['id']).encode()).hexdigest()}@{MASK_DOMAIN}"
                )
            first = customer["firstName"] or ""
            last = (customer["lastName"] or "").strip()
            locale = customer["localeDefault"]
            profile_id, phone = customer["userId"], customer["phone"] or ""
            document, document_type = customer["document"], customer["documentType"]
            optin = bool(customer["isNewsletterOptIn"])
        else:
            locale, _, first, last, email = self._identity_for_guest(i)
            masked = f"{hashlib.md5(email.encode()).hexdigest()}@{MASK_DOMAIN}"
            profile_id = "" if kind == "anonymous_guest" else self._uuid("guest", i)
            phone = PHONE_FORMATS[locale](rng)
            document = f"{rng.randint(0, 10**11 - 1):011d}"
            document_type = DOCUMENT_TYPES[locale]
            optin = rng.random() < 0.3
        profile = {
            "id": "clientProfileData",
            "email": masked,
            "firstName": first,
            "lastName": last,
            "documentType": document_type,
            "document": document,
            "phone": phone,
            "corporateName": None,
            "tradeName": None,
            "corporateDocument": None,
            "stateInscription": None,
            "corporatePhone": None,
            "isCorporate": False,
            "userProfileId": profile_id,
            "userProfileVersion": None,
            "customerClass": None,
            "customerCode": None,
        }
        return {"profile": profile, "locale": locale, "optin": optin}

    def _identity_for_guest(self, i: int) -> tuple[str, str, str, str, str]:
        rng = Rng(self._h("rng.guest", i))
        locale = pick_weighted(rng.random(), LOCALES)[0]
        female, male, last_names = NAMES[locale]
        first = rng.choice(female + male)
        last = rng.choice(last_names)
        return locale, "", first, last, f"{ascii_slug(first)}.guest{i}@{rng.choice(DOMAINS)}"

    def _order_item(self, rng: Rng, currency: str) -> Doc:
        product_id = rng.randint(1, self.products)
        skus = self.product_sku_ids(product_id)
        sku_id = rng.choice(skus)
        product = self._product(product_id)
        base = product["price"] + 1000 * (sku_id % SKUS_PER_PRODUCT)
        list_price = self._money(base, currency)
        price = list_price if rng.random() < 0.7 else self._money(base * 9 // 10, currency)
        selling = price if rng.random() < 0.85 else price - self._money(500, currency)
        selling = max(selling, 0)
        quantity = rng.randint(1, 3)
        dept_id, dept, cat_id, cat = product["category"]
        slug = product["slug"]
        return {
            "uniqueId": hashlib.md5(f"{rng.random()}".encode()).hexdigest().upper(),
            "id": str(sku_id),
            "productId": str(product_id),
            "ean": f"789{sku_id:010d}",
            "lockId": "",
            "itemAttachment": {"content": {}, "name": None},
            "attachments": [],
            "quantity": quantity,
            "seller": "1",
            "name": f"{product['name']} {VARIANTS[sku_id % len(VARIANTS)]}",
            "refId": f"REF-{sku_id}",
            "price": price,
            "listPrice": list_price,
            "manualPrice": None,
            "priceTags": [],
            "imageUrl": f"https://{self.account}.vteximg.com.br/arquivos/ids/{sku_id}-55-55/{slug}.jpg",
            "detailUrl": f"/{slug}-{product_id}/p",
            "components": [],
            "bundleItems": [],
            "params": [],
            "offerings": [],
            "attachmentOfferings": [],
            "sellerSku": str(sku_id),
            "priceValidUntil": None,
            "commission": 0,
            "tax": 0,
            "preSaleDate": None,
            "additionalInfo": {
                "brandName": product["brand"][1],
                "brandId": str(product["brand"][0]),
                "categoriesIds": f"/{dept_id}/{cat_id}/",
                "categories": [{"id": cat_id, "name": cat}, {"id": dept_id, "name": dept}],
                "productClusterId": "",
                "commercialConditionId": "1",
                "dimension": ITEM_DIMENSION,
                "offeringInfo": None,
                "offeringType": None,
                "offeringTypeId": None,
            },
            "measurementUnit": "un",
            "unitMultiplier": 1,
            "sellingPrice": selling,
            "isGift": False,
            "shippingPrice": None,
            "rewardValue": 0,
            "freightCommission": 0,
            "priceDefinitions": {
                "sellingPrices": [{"value": selling, "quantity": quantity}],
                "calculatedSellingPrice": selling,
                "total": selling * quantity,
            },
            "taxCode": None,
            "parentItemIndex": None,
            "parentAssemblyBinding": None,
            "callCenterOperator": None,
            "serialNumbers": None,
            "assemblies": [],
            "costPrice": list_price // 2,
        }

    def _shipping(self, rng: Rng, buyer: dict[str, Any], items: list[Doc], shipping: int) -> Doc:
        profile = buyer["profile"]
        address: Doc = {
            "addressType": "residential",
            "receiverName": f"{profile['firstName']} {profile['lastName']}".strip(),
            "addressId": str(rng.randint(10**12, 10**13 - 1)),
            "versionId": None,
            "entityId": None,
            "postalCode": f"{rng.randint(10000, 99999)}-{rng.randint(100, 999)}",
            "city": rng.choice(("São Paulo", "Rio de Janeiro", "Santiago", "Curitiba")),
            "state": rng.choice(("SP", "RJ", "RM", "PR")),
            "country": "BRA",
            "street": rng.choice(("Rua Augusta", "Avenida Paulista", "Rua das Flores")),
            "number": str(rng.randint(1, 3000)),
            "neighborhood": "Centro",
            "complement": "",
            "reference": None,
            "geoCoordinates": [],
        }
        per_item = shipping // len(items) if items else 0
        logistics = [
            {
                "itemIndex": index,
                "selectedSla": "Normal",
                "lockTTL": "10d",
                "price": per_item,
                "listPrice": per_item,
                "sellingPrice": per_item,
                "deliveryWindow": None,
                "deliveryCompany": "Correios",
                "shippingEstimate": "5bd",
                "slas": [],
                "shipsTo": ["BRA"],
                "deliveryIds": [],
                "deliveryChannels": [{"id": "delivery", "stockBalance": 0}],
                "selectedDeliveryChannel": "delivery",
                "pickupStoreInfo": None,
                "addressId": address["addressId"],
                "versionId": None,
                "entityId": None,
                "polygonName": None,
                "pickupPointId": None,
                "transitTime": None,
            }
            for index in range(len(items))
        ]
        return {
            "id": "shippingData",
            "address": address,
            "logisticsInfo": logistics,
            "trackingHints": None,
            "selectedAddresses": [address],
        }
