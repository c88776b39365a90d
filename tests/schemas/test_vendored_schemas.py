"""The project's copy of Synerise's request schemas: complete, loadable, and equal to the reference.

The sandbox validates with its own copy so that nothing reads ``../shared`` at run time; this
test makes any drift between the copy and the reference visible.
"""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from tests.schemas.references import VENDORED_SCHEMAS, shared_dir

EXPECTED = {
    "README.md",
    "sources.json",
    "auth_login_profile.json",
    "catalogs_bags.json",
    "catalogs_items_batch.json",
    "clients.json",
    "clients_batch.json",
    "events_batch.json",
    "events_custom.json",
    "transactions.json",
    "transactions_batch.json",
}


def test_the_copy_holds_every_schema_and_its_source_notes():
    assert {path.name for path in VENDORED_SCHEMAS.iterdir()} == EXPECTED
    sources = json.loads((VENDORED_SCHEMAS / "sources.json").read_text(encoding="utf-8"))
    assert all({"repo", "path", "commit"} <= set(source) for source in sources)


@pytest.mark.parametrize("name", sorted(name for name in EXPECTED if name.endswith(".json")))
def test_every_schema_is_a_valid_2020_12_schema(name):
    document = json.loads((VENDORED_SCHEMAS / name).read_text(encoding="utf-8"))
    if name == "sources.json":
        return
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(document)


def test_the_copy_equals_the_reference():
    shared = shared_dir()
    reference = shared / "reference" / "synerise-schemas" if shared else None
    if reference is None or not reference.is_dir():
        pytest.skip("../shared/reference/synerise-schemas is absent: drift cannot be checked")
    assert {path.name for path in reference.iterdir()} == EXPECTED
    for name in sorted(EXPECTED):
        assert (VENDORED_SCHEMAS / name).read_bytes() == (reference / name).read_bytes(), (
            f"etl/sandbox/synerise_schemas/{name} differs from the reference: copy it again"
        )
