"""Where the reference files are (VTEX specs, Synerise schemas), for the mapping tests."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from tests.helpers.specs import require_specs

VENDORED_SCHEMAS = Path(str(resources.files("etl.sandbox") / "synerise_schemas"))


def shared_dir() -> Path | None:
    """The project's ``shared`` references, beside the repository (``<repo>/../shared``)."""
    for parent in Path(__file__).resolve().parents:
        candidate = (parent / ".." / "shared").resolve()
        if (candidate / "reference").is_dir():
            return candidate
    return None


@cache
def orders_spec() -> dict[str, Any]:
    """VTEX's Orders OpenAPI document (the test fails in CI, and is skipped locally, without it)."""
    folder = require_specs("vtex", ["orders-api.json"])
    document: dict[str, Any] = json.loads((folder / "orders-api.json").read_text(encoding="utf-8"))
    return document


def response_example(path: str) -> dict[str, Any]:
    """The JSON example of a GET operation's 200 response in the Orders spec."""
    operation = orders_spec()["paths"][path]["get"]
    example: dict[str, Any] = operation["responses"]["200"]["content"]["application/json"][
        "example"
    ]
    return example


@cache
def vendored_schema(name: str) -> dict[str, Any]:
    """A Synerise request schema from the project's own copy (``etl/sandbox/synerise_schemas``)."""
    schema: dict[str, Any] = json.loads(
        (VENDORED_SCHEMAS / f"{name}.json").read_text(encoding="utf-8")
    )
    return schema
