"""`FixtureDataset`: the same interface over JSON documents read from a folder."""

from __future__ import annotations

import json
from pathlib import Path

from etl.sandbox.data.source import Doc, Source, check_index
from etl.sandbox.data.timefmt import parse_time
from etl.sandbox.data.timelines import SortedTimeline, TimeField


class FixtureDataset(Source):
    """VTEX documents read from a directory, served as they are.

    Layout (every file holds one document or a list of them; missing folders are empty)::

        DIR/customers/*.json   Master Data CL documents (``id`` and ``createdIn`` required)
        DIR/orders/*.json      Get order documents (``orderId`` and ``creationDate`` required)
        DIR/products/*.json    SKU documents as ``stockkeepingunitbyid`` returns them
        DIR/prices/*.json      Pricing v2 documents (``itemId`` required), optional

    No ground truth is known for fixtures: `dirty_kind` is always None.

    Raises:
        ValueError: a file is not JSON or a document lacks a required field (the message names
            the file).
    """

    def __init__(self, directory: str | Path, account: str = "sandbox") -> None:
        root = Path(directory)
        if not root.is_dir():
            raise ValueError(f"fixtures directory {str(root)!r} does not exist")
        self.account = account
        customers = _load_documents(root / "customers", ("id", "createdIn"))
        self.account_id = next(
            (str(doc["accountId"]) for _, doc in customers if doc.get("accountId")),
            "00000000-0000-4000-8000-000000000000",
        )
        orders = _load_documents(root / "orders", ("orderId", "creationDate"))
        skus = _load_documents(root / "products", ("Id", "ProductId"))
        prices = _load_documents(root / "prices", ("itemId",))

        def timed(docs: list[tuple[Path, Doc]], name: str) -> list[tuple[int, Doc]]:
            out = []
            for path, doc in docs:
                try:
                    out.append((parse_time(str(doc[name])), doc))
                except ValueError as exc:
                    raise ValueError(f"{path}: {name}: {exc}") from None
            return sorted(out, key=lambda pair: pair[0])

        customer_rows = timed(customers, "createdIn")
        order_rows = timed(orders, "creationDate")
        self._customers = [doc for _, doc in customer_rows]
        self._orders = [doc for _, doc in order_rows]
        self.customer_count, self.order_count = len(self._customers), len(self._orders)
        created = [t for t, _ in customer_rows]
        updated = [
            max(t, parse_time(doc["updatedIn"])) if doc.get("updatedIn") else t
            for t, doc in customer_rows
        ]
        delay = max((u - c for u, c in zip(updated, created, strict=True)), default=0)
        line = SortedTimeline(created)
        self._customer_fields = {
            "createdIn": TimeField(line, line.base, 0, True),
            "updatedIn": TimeField(line, updated.__getitem__, delay, True),
        }
        order_line = SortedTimeline([t for t, _ in order_rows])
        self._order_fields = {"creationDate": TimeField(order_line, order_line.base, 0, True)}
        for name in ("authorizedDate", "invoicedDate"):
            values = [parse_time(doc[name]) if doc.get(name) else None for _, doc in order_rows]
            delay = max(
                (v - t for v, (t, _) in zip(values, order_rows, strict=True) if v is not None),
                default=0,
            )
            self._order_fields[name] = TimeField(
                order_line, values.__getitem__, max(delay, 0), False
            )
        self._lookup: dict[tuple[str, str], list[int]] = {}
        for i, doc in enumerate(self._customers):
            for field in ("id", "userId", "email"):
                if doc.get(field):
                    self._lookup.setdefault((field, str(doc[field])), []).append(i)
        self._order_ids = {str(doc["orderId"]): i for i, doc in enumerate(self._orders)}
        for i, doc in enumerate(self._orders):
            if doc.get("sequence"):
                self._order_ids.setdefault(f"seq{doc['sequence']}", i)
        self._skus = {int(doc["Id"]): doc for _, doc in skus}
        self._prices = {int(doc["itemId"]): doc for _, doc in prices}
        self._products: dict[int, list[int]] = {}
        for sku_id, doc in sorted(self._skus.items()):
            self._products.setdefault(int(doc["ProductId"]), []).append(sku_id)

    def __repr__(self) -> str:
        return f"FixtureDataset(customers={self.customer_count}, orders={self.order_count})"

    def customer(self, i: int) -> Doc:
        check_index(i, self.customer_count, "customer")
        return json.loads(json.dumps(self._customers[i]))

    def find_customers(self, field: str, value: str) -> list[int]:
        return list(self._lookup.get((field, value), ()))

    def order(self, i: int) -> Doc:
        check_index(i, self.order_count, "order")
        return json.loads(json.dumps(self._orders[i]))

    def order_status(self, i: int) -> str:
        return str(self._orders[i].get("status") or "")

    def order_index(self, order_id: str) -> int | None:
        return self._order_ids.get(order_id)

    def product_ids(self, category_id: int | None = None) -> list[int]:
        if category_id is None:
            return sorted(self._products)
        wanted = f"/{category_id}/"
        return sorted(
            p for p, skus in self._products.items()
            if wanted in str(self._skus[skus[0]].get("ProductCategoryIds") or "")
        )  # fmt: skip

    def product_sku_ids(self, product_id: int) -> list[int]:
        return list(self._products.get(product_id, ()))

    def sku(self, sku_id: int) -> Doc | None:
        doc = self._skus.get(sku_id)
        return json.loads(json.dumps(doc)) if doc is not None else None

    def price(self, sku_id: int) -> Doc | None:
        doc = self._prices.get(sku_id)
        return json.loads(json.dumps(doc)) if doc is not None else None


def _load_documents(folder: Path, required: tuple[str, ...]) -> list[tuple[Path, Doc]]:
    if not folder.is_dir():
        return []
    out: list[tuple[Path, Doc]] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not readable JSON ({exc})") from None
        for doc in data if isinstance(data, list) else [data]:
            if not isinstance(doc, dict):
                raise ValueError(f"{path}: expected a JSON object or a list of objects")
            missing = [name for name in required if doc.get(name) in (None, "")]
            if missing:
                raise ValueError(f"{path}: document without {', '.join(missing)}")
            out.append((path, doc))
    return out
