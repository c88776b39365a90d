"""The generated catalog: products with 1-3 SKUs each, SKU context and prices.

Like a real store's catalog it is not all clean: a few products are inactive (every SKU of
theirs shows ``IsProductActive: false``), a few SKUs are inactive themselves, some SKUs have no
price in the Pricing API (404) and some have no image (``ImageUrl`` empty, ``Images`` empty: the
Catalog spec types ``ImageUrl`` as a string, so the sandbox sends ``""`` rather than ``null``).
Some SKUs carry a fixed price for trade policy 1 (it overrides the base price there) and others
one for trade policy 2. Each trait is drawn from ``(seed, id)``, so `catalog_traits` names them.
"""

from __future__ import annotations

from typing import Any

from etl.sandbox.data.generated import GeneratedData
from etl.sandbox.data.rng import Rng
from etl.sandbox.data.source import Doc
from etl.sandbox.data.words import (
    ADJECTIVES,
    BRANDS,
    CATEGORIES,
    ITEM_DIMENSION,
    NOUNS,
    VARIANTS,
    ascii_slug,
)

SKUS_PER_PRODUCT = 1000

INACTIVE_PRODUCT_SHARE = 0.04
INACTIVE_SKU_SHARE = 0.06
NO_PRICE_SHARE = 0.05
NO_IMAGE_SHARE = 0.05

_PRODUCT_CACHE = 4096
"""Products whose attributes are kept (orders read the same few again and again)."""


class CatalogGenerator(GeneratedData):
    """Products, SKUs (id ``product * 1000 + k``) and Pricing v2 documents."""

    def _product(self, product_id: int) -> dict[str, Any]:
        """Product attributes (cached, bounded: order lines read the same products again)."""
        cached = self._products.get(product_id)
        if cached is None:
            if len(self._products) >= _PRODUCT_CACHE:
                self._products.clear()
            cached = self._products[product_id] = self._make_product(product_id)
        return cached

    def _make_product(self, product_id: int) -> dict[str, Any]:
        rng = Rng(self._h("rng.product", product_id))
        category = CATEGORIES[rng.randrange(len(CATEGORIES))]
        name = f"{rng.choice(ADJECTIVES)} {NOUNS[category[2]]}"
        return {
            "name": name,
            "category": category,
            "brand": rng.choice(BRANDS),
            "skus": rng.randint(1, 3),
            "price": rng.randint(19, 499) * 100 - 10,  # BRL cents, e.g. 4990
            "description": f"{name} by the sandbox store.",
            "slug": ascii_slug(name),
            "active": self._h.unit("catalog.product_inactive", product_id)
            >= INACTIVE_PRODUCT_SHARE,
        }

    def product_ids(self, category_id: int | None = None) -> list[int]:
        ids = range(1, self.products + 1)
        if category_id is None:
            return list(ids)
        return [p for p in ids if category_id in self._product(p)["category"][::2]]

    def product_sku_ids(self, product_id: int) -> list[int]:
        if not 1 <= product_id <= self.products:
            return []
        count = self._product(product_id)["skus"]
        return [product_id * SKUS_PER_PRODUCT + k for k in range(1, count + 1)]

    def catalog_traits(self, sku_id: int) -> dict[str, bool]:
        """What is special about a generated SKU (the ground truth of the catalog)."""
        parts = self._sku_parts(sku_id)
        if parts is None:
            raise ValueError(f"SKU {sku_id} is not in the generated catalog")
        return {
            "product_inactive": not parts[1]["active"],
            "sku_inactive": self._h.unit("catalog.sku_inactive", sku_id) < INACTIVE_SKU_SHARE,
            "no_price": self._h.unit("catalog.no_price", sku_id) < NO_PRICE_SHARE,
            "no_image": self._h.unit("catalog.no_image", sku_id) < NO_IMAGE_SHARE,
        }

    def _sku_parts(self, sku_id: int) -> tuple[int, dict[str, Any]] | None:
        product_id, k = divmod(sku_id, SKUS_PER_PRODUCT)
        if not 1 <= product_id <= self.products:
            return None
        product = self._product(product_id)
        return (product_id, product) if 1 <= k <= product["skus"] else None

    def sku(self, sku_id: int) -> Doc | None:
        parts = self._sku_parts(sku_id)
        if parts is None:
            return None
        product_id, product = parts
        traits = self.catalog_traits(sku_id)
        dept_id, dept, cat_id, cat = product["category"]
        brand_id, brand = product["brand"]
        variant = VARIANTS[sku_id % len(VARIANTS)]
        slug = product["slug"]
        image = f"https://{self.account}.vteximg.com.br/arquivos/ids/{sku_id}/{slug}.jpg"
        images = [] if traits["no_image"] else [
            {"ImageUrl": image, "ImageName": variant, "FileId": sku_id}
        ]  # fmt: skip
        thumbnail = "" if traits["no_image"] else image.replace(f"/{sku_id}/", f"/{sku_id}-55-55/")
        return {
            "Id": sku_id,
            "ProductId": product_id,
            "NameComplete": f"{product['name']} {variant}",
            "ComplementName": "",
            "ProductName": product["name"],
            "ProductDescription": product["description"],
            "ProductRefId": f"PRD-{product_id}",
            "TaxCode": "",
            "SkuName": variant,
            "IsActive": not traits["sku_inactive"],
            "IsTransported": True,
            "IsInventoried": True,
            "IsGiftCardRecharge": False,
            "ImageUrl": thumbnail,
            "DetailUrl": f"/{slug}-{product_id}/p",
            "CSCIdentification": None,
            "BrandId": str(brand_id),
            "BrandName": brand,
            "IsBrandActive": True,
            "Dimension": dict(ITEM_DIMENSION),
            "RealDimension": {"realCubicWeight": 1.0, "realHeight": 10, "realLength": 20,
                              "realWeight": 500, "realWidth": 15},
            "ManufacturerCode": "",
            "IsKit": False,
            "KitItems": [],
            "Services": [],
            "Categories": [],
            "CategoriesFullPath": [f"/{dept_id}/{cat_id}/", f"/{dept_id}/"],
            "Attachments": [],
            "Collections": [],
            "SkuSellers": [
                {"SellerId": "1", "StockKeepingUnitId": sku_id,
                 "SellerStockKeepingUnitId": str(sku_id), "IsActive": True,
                 "FreightCommissionPercentage": 0, "ProductCommissionPercentage": 0}
            ],
            "SalesChannels": [1, 2],
            "Images": images,
            "Videos": [],
            "SkuSpecifications": [],
            "ProductSpecifications": [],
            "ProductClustersIds": "",
            "PositionsInClusters": {},
            "ProductClusterNames": {},
            "ProductClusterHighlights": {},
            "ProductCategoryIds": f"/{dept_id}/{cat_id}/",
            "IsDirectCategoryActive": True,
            "ProductGlobalCategoryId": None,
            "ProductCategories": {str(cat_id): cat, str(dept_id): dept},
            "CommercialConditionId": 1,
            "RewardValue": 0.0,
            "AlternateIds": {"Ean": f"789{sku_id:010d}", "RefId": f"REF-{sku_id}"},
            "AlternateIdValues": [f"789{sku_id:010d}", f"REF-{sku_id}"],
            "EstimatedDateArrival": None,
            "MeasurementUnit": "un",
            "UnitMultiplier": 1.0,
            "InformationSource": None,
            "ModalType": None,
            "KeyWords": None,
            "ReleaseDate": None,
            "ProductIsVisible": product["active"],
            "ShowIfNotAvailable": True,
            "IsProductActive": product["active"],
            "ProductFinalScore": 0,
        }  # fmt: skip

    def price(self, sku_id: int) -> Doc | None:
        parts = self._sku_parts(sku_id)
        if parts is None or self.catalog_traits(sku_id)["no_price"]:
            return None
        cents = parts[1]["price"] + 1000 * (sku_id % SKUS_PER_PRODUCT)
        base = cents // 100  # the Pricing spec types basePrice, listPrice, costPrice as integers
        fixed: list[Doc] = []
        if sku_id % 7 == 0:
            fixed.append(
                {"tradePolicyId": "1", "value": round(cents * 0.85) / 100, "listPrice": None,
                 "minQuantity": 1}
            )  # fmt: skip
        if sku_id % 5 == 0:
            fixed.append(
                {"tradePolicyId": "2", "value": round(base * 0.9, 2), "listPrice": None,
                 "minQuantity": 1}
            )  # fmt: skip
        return {
            "itemId": str(sku_id),
            "listPrice": base + base // 5,
            "costPrice": base // 2,
            "markup": 100,
            "basePrice": base,
            "fixedPrices": fixed,
        }
