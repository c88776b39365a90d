"""The generated catalog: products with 1-3 SKUs each, SKU context and prices."""

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


class CatalogGenerator(GeneratedData):
    """Products, SKUs (id ``product * 1000 + k``) and Pricing v2 documents."""

    def _product(self, product_id: int) -> dict[str, Any]:
        """Product attributes (cached: the catalog is small and read by every order line)."""
        cached = self._products.get(product_id)
        if cached is None:
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
        dept_id, dept, cat_id, cat = product["category"]
        brand_id, brand = product["brand"]
        variant = VARIANTS[sku_id % len(VARIANTS)]
        slug = product["slug"]
        image = f"https://{self.account}.vteximg.com.br/arquivos/ids/{sku_id}/{slug}.jpg"
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
            "IsActive": True,
            "IsTransported": True,
            "IsInventoried": True,
            "IsGiftCardRecharge": False,
            "ImageUrl": image.replace(f"/{sku_id}/", f"/{sku_id}-55-55/"),
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
            "Images": [{"ImageUrl": image, "ImageName": variant, "FileId": sku_id}],
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
            "ProductIsVisible": True,
            "ShowIfNotAvailable": True,
            "IsProductActive": True,
            "ProductFinalScore": 0,
        }  # fmt: skip

    def price(self, sku_id: int) -> Doc | None:
        parts = self._sku_parts(sku_id)
        if parts is None:
            return None
        product = parts[1]
        cents = product["price"] + 1000 * (sku_id % SKUS_PER_PRODUCT)
        base = cents // 100
        fixed: list[Doc] = []
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
