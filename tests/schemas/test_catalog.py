"""Catalog items: one per SKU, every column text, nothing invented, inactive means deleted, and
every item Synerise's own model accepts (``catalogs_items_batch.json``)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from etl.config import ConfigError, Settings
from etl.errors import SkippableRecordError
from etl.sandbox.data import Dataset
from schemas.catalog import (
    DEFAULT_COLUMNS,
    CatalogConfig,
    catalog_item,
    catalog_tombstone,
    merge_columns,
)
from schemas.reasons import FieldWarning, RejectReason, WarningCode
from tests.schemas.references import vendored_schema

ITEMS_VALIDATOR = Draft202012Validator(vendored_schema("catalogs_items_batch"))
CONFIG = CatalogConfig(store_base_url="https://shop.example/")
NOW = datetime(2026, 3, 1, tzinfo=UTC)
DATASET = Dataset(customers=1, orders=1, seed=11, products=400)


def sku(**overrides: Any) -> dict[str, Any]:
    """A SKU context as VTEX documents it, with overrides (``None`` deletes a key)."""
    doc = copy.deepcopy(DATASET.sku(1001))
    assert doc is not None
    doc.update({"Id": 1001, "IsActive": True, "IsProductActive": True})
    doc["Images"] = [{"ImageUrl": "https://img.example/1001.jpg", "ImageName": "x", "FileId": 1}]
    for name, value in overrides.items():
        if value is None:
            doc.pop(name, None)
        else:
            doc[name] = value
    return doc


def price(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "itemId": "1001", "listPrice": 60, "costPrice": 25, "markup": 100, "basePrice": 50,
        "fixedPrices": [],
    }  # fmt: skip
    doc.update(overrides)
    return doc


def item(
    doc: dict[str, Any] | None = None,
    prices: dict[str, Any] | None = None,
    config: CatalogConfig = CONFIG,
    warnings: list[FieldWarning] | None = None,
) -> dict[str, str]:
    result = catalog_item(
        sku() if doc is None else doc, prices, config, key="1001", currency="BRL", now=NOW,
        warnings=warnings,
    )  # fmt: skip
    assert ITEMS_VALIDATOR.is_valid([result]), ITEMS_VALIDATOR.iter_errors([result])
    assert result["itemKey"] == "1001"
    return dict(result["value"])


def test_the_default_columns() -> None:
    value = item(prices=price())
    assert value == {
        "itemId": "1001",
        "parentId": "1",
        "title": value["title"],
        "description": value["description"],
        "brand": value["brand"],
        "url": f"https://shop.example{sku()['DetailUrl']}",
        "image": "https://img.example/1001.jpg",
        "categories": value["categories"],
        "price": "50.00",
        "listPrice": "60.00",
        "currency": "BRL",
        "salesChannels": "1,2",
        "refId": "REF-1001",
        "ean": "7890000001001",
        "deleted": "0",
    }
    assert value["title"] == sku()["NameComplete"] and value["brand"] == sku()["BrandName"]
    department, category = sku()["ProductCategoryIds"].strip("/").split("/")
    names = sku()["ProductCategories"]
    assert value["categories"] == f"{names[department]} > {names[category]}"
    assert [column for column, _ in DEFAULT_COLUMNS] == list(value)


def test_every_generated_sku_maps_to_an_item_synerise_accepts() -> None:
    """400 products: inactive ones, SKUs without a price or an image; each one item, valid."""
    config = CatalogConfig()  # no storefront: links are left out, never invented
    seen = 0
    for product in DATASET.product_ids():
        for sku_id in DATASET.product_sku_ids(product):
            traits = DATASET.catalog_traits(sku_id)
            doc, prices = DATASET.sku(sku_id), DATASET.price(sku_id)
            assert doc is not None
            result = catalog_item(doc, prices, config, key=str(sku_id), now=NOW)
            assert ITEMS_VALIDATOR.is_valid([result])
            value = result["value"]
            assert value["itemId"] == str(sku_id) and value["parentId"] == str(product)
            inactive = traits["sku_inactive"] or traits["product_inactive"]
            assert value["deleted"] == ("1" if inactive else "0")
            assert ("price" in value) is not traits["no_price"]
            assert ("image" in value) is not traits["no_image"]
            assert "url" not in value and "currency" not in value
            seen += 1
    assert seen > 400
    assert ITEMS_VALIDATOR.is_valid([catalog_tombstone("1001")])


@pytest.mark.parametrize(
    ("overrides", "deleted"),
    [
        ({"IsActive": False}, "1"),
        ({"IsProductActive": False}, "1"),
        ({"IsActive": False, "IsProductActive": False}, "1"),
        ({"IsProductActive": None}, "0"),
    ],
)
def test_an_inactive_sku_or_product_is_deleted(overrides: dict[str, Any], deleted: str) -> None:
    value = item(sku(**overrides), price())
    assert value["deleted"] == deleted
    assert value["title"] and value["price"] == "50.00"  # a deleted row keeps its attributes


def test_a_sku_gone_from_vtex_is_a_tombstone() -> None:
    assert catalog_tombstone("77") == {"itemKey": "77", "value": {"itemId": "77", "deleted": "1"}}


def test_nothing_is_invented() -> None:
    value = item(
        sku(Images=[], ImageUrl="", BrandName="  ", ProductDescription=None, DetailUrl=""),
        None,
    )
    for column in ("image", "brand", "description", "url", "price", "listPrice"):
        assert column not in value
    assert "image" in item(sku(Images=[], ImageUrl="https://img.example/thumb.jpg"), None)
    without_names = item(sku(ProductCategories={}), None)
    assert "categories" not in without_names


def test_urls() -> None:
    assert item(sku(DetailUrl="shirt/p"))["url"] == "https://shop.example/shirt/p"
    absolute = "https://other.example/shirt/p"
    assert item(sku(DetailUrl=absolute))["url"] == absolute
    assert "url" not in item(sku(DetailUrl="/shirt/p"), config=CatalogConfig())


FIXED = {"tradePolicyId": "1", "value": 39.9, "listPrice": None, "minQuantity": 1}


@pytest.mark.parametrize(
    ("fixed", "expected"),
    [
        ([], ("50.00", "60.00")),
        ([FIXED], ("39.90", "60.00")),
        ([{**FIXED, "listPrice": 70}], ("39.90", "70.00")),
        ([{**FIXED, "tradePolicyId": "2"}], ("50.00", "60.00")),
        ([{**FIXED, "minQuantity": 3}], ("50.00", "60.00")),
        (
            [FIXED, {**FIXED, "value": 29.5, "dateRange": {"from": "2026-02-01T00:00:00Z",
                                                           "to": "2026-04-01T00:00:00Z"}}],
            ("29.50", "60.00"),
        ),
        (
            [{**FIXED, "dateRange": {"from": "2026-04-01T00:00:00Z",
                                     "to": "2026-05-01T00:00:00Z"}}],
            ("50.00", "60.00"),
        ),
        ([{**FIXED, "dateRange": {"from": "soon", "to": "later"}}], ("50.00", "60.00")),
    ],
)  # fmt: skip
def test_the_trade_policy_fixed_price_wins_when_it_applies(
    fixed: list[dict[str, Any]], expected: tuple[str, str]
) -> None:
    value = item(prices=price(fixedPrices=fixed))
    assert (value["price"], value["listPrice"]) == expected


def test_without_a_base_price_the_cost_and_markup_make_it() -> None:
    assert item(prices=price(basePrice=None, costPrice=20, markup=50))["price"] == "30.00"
    bare = item(prices=price(basePrice=None, costPrice=None, listPrice=None))
    assert "price" not in bare and "listPrice" not in bare


def test_another_trade_policy() -> None:
    config = CatalogConfig(trade_policy="2")
    assert item(prices=price(fixedPrices=[{**FIXED, "tradePolicyId": "2"}]), config=config)[
        "price"
    ] == "39.90"


def test_wrong_types_drop_their_column_with_a_warning() -> None:
    warnings: list[FieldWarning] = []
    value = item(
        sku(NameComplete=42, SalesChannels="1,2"), price(basePrice="50", costPrice=None),
        warnings=warnings,
    )
    assert "title" not in value and "salesChannels" not in value and "price" not in value
    assert value["listPrice"] == "60.00"
    assert {w.code for w in warnings} == {WarningCode.WRONG_TYPE_DROPPED}
    assert {w.field for w in warnings} == {"NameComplete", "SalesChannels", "price"}


@pytest.mark.parametrize(
    "doc",
    [
        sku(Id=None),
        sku(IsActive=None),
        sku(IsActive="yes"),
        sku(Id="abc"),
        sku(Id=1002),
        sku(IsProductActive="no"),
        ["not", "a", "sku"],
    ],
)
def test_a_sku_without_id_or_activity_is_rejected(doc: Any) -> None:
    with pytest.raises(SkippableRecordError) as raised:
        catalog_item(doc, None, CONFIG, key="1001", now=NOW)
    assert raised.value.reason == RejectReason.MAPPING_ERROR and raised.value.key == "1001"


# -- configured columns --------------------------------------------------------------------------


def test_columns_can_be_changed_dropped_and_added() -> None:
    config = CatalogConfig(
        columns=merge_columns(
            [
                ("title", "sku:ProductName"),
                ("ean", ""),
                ("manufacturer", "sku:ManufacturerCode"),
                ("cost", "price:costPrice"),
                ("thumbnail", "sku:ImageUrl"),
                ("brandId", "sku:BrandId"),
                ("kit", "sku:IsKit"),
                ("dimension", "sku:Dimension"),
                ("priceAgain", "price"),
            ]
        ),
        store_base_url="https://shop.example",
    )
    value = item(sku(ManufacturerCode=" M-1 ", IsKit=False), price(), config=config)
    assert value["title"] == sku()["ProductName"] and "ean" not in value
    assert value["manufacturer"] == "M-1" and value["cost"] == "25"
    assert value["brandId"] == sku()["BrandId"] and value["kit"] == "false"
    assert value["dimension"].startswith("{") and value["priceAgain"] == "50.00"
    added = ["manufacturer", "cost", "thumbnail", "brandId", "kit", "dimension", "priceAgain"]
    assert list(value)[-len(added) :] == added


@pytest.mark.parametrize(
    "changes",
    [[("itemId", "sku:RefId")], [("deleted", "")], [("title", "nonsense")]],
)
def test_item_id_and_deleted_cannot_change(changes: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        merge_columns(changes)
    with pytest.raises(ValueError):
        CatalogConfig(columns=(("itemId", "sku:Id"),))


def test_the_settings() -> None:
    env = {
        "VTEX_ACCOUNT": "my-store",
        "CATALOG_COLUMNS": "title=sku:ProductName, ean=, manufacturer=sku:ManufacturerCode",
        "CATALOG_TRADE_POLICY": "3",
        "CATALOG_CURRENCY": "EUR",
    }
    settings = Settings.from_env(env, require=())
    config = CatalogConfig.from_settings(settings)
    assert settings.synerise_catalog_name == "vtexmystore"
    assert settings.catalog_currency == "EUR" and config.trade_policy == "3"
    assert config.store_base_url == "https://my-store.myvtex.com"
    table = dict(config.columns)
    assert table["title"] == "sku:ProductName" and "ean" not in table
    assert table["manufacturer"] == "sku:ManufacturerCode"
    assert Settings.from_env({}, require=()).synerise_catalog_name == "vtex"
    stored = Settings.from_env({**env, "STORE_BASE_URL": "https://shop.example"}, require=())
    assert CatalogConfig.from_settings(stored).store_base_url == "https://shop.example"
    for variable, raw in [
        ("CATALOG_COLUMNS", "itemId=sku:RefId"),
        ("CATALOG_COLUMNS", "deleted="),
        ("CATALOG_COLUMNS", "title"),
        ("CATALOG_COLUMNS", "title=nonsense"),
        ("CATALOG_COLUMNS", "bad name=sku:Id"),
        ("CATALOG_COLUMNS", "a=sku:Id,a=sku:Id"),
        ("CATALOG_COLUMNS", "a=sku:"),
        ("CATALOG_COLUMNS", "a=price:itemId"),
        ("CATALOG_TRADE_POLICY", "one"),
        ("CATALOG_CURRENCY", "real"),
        ("SYNERISE_CATALOG_NAME", "my catalog"),
        ("VTEX_CATALOG_RATE_LIMIT", "0"),
    ]:
        with pytest.raises(ConfigError) as raised:
            Settings.from_env({variable: raw}, require=())
        assert raised.value.variable == variable
