"""Issue 11 end to end (sandbox over HTTP, a real worker, Redis, PostgreSQL): field warnings are
stored per record and shown by ``sync rejects --warnings``; guest buyers get a profile before
their transaction; and everything the syncs send passes the strict Synerise emulator.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import requests

from etl.errors import SkippableRecordError
from schemas.mapping import MappingConfig, profile_from_customer
from tests.helpers.sync import RANGE_ARGS, expected, invoke, json_lines, stats


def sync(scope: str, *flags: str) -> dict[str, Any]:
    result = invoke("sync", "start", scope, *RANGE_ARGS, "--wait", "--json", *flags)
    return dict(json.loads(result.stdout))


def warnings_of(run_id: int, *flags: str) -> list[dict[str, Any]]:
    return json_lines(invoke("sync", "rejects", str(run_id), "--warnings", "--json", *flags).stdout)


def customer_warnings(sandbox, changes: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """CL document id -> the warning codes the mapping gives its profile (sent ones only), the
    generated documents with ``changes`` (id -> fields) applied."""
    data, found = sandbox.dataset, {}
    for i in range(data.customer_count):
        doc, warnings = data.customer(i), []
        doc.update(changes.get(doc["id"], {}))
        try:
            profile_from_customer(doc, MappingConfig(), warnings=warnings)
        except SkippableRecordError:
            continue
        if warnings:
            found[doc["id"]] = {str(w.code) for w in warnings}
    return found


def assert_strict_sandbox_refused_nothing(sandbox) -> None:
    synerise = stats(sandbox)
    assert synerise["strict"] is True
    assert synerise["refused"] == {}, synerise["refused"]
    assert synerise["violations"] == {"schema": 0, "rule": 0, "prose": 0}


def test_a_profile_sent_without_a_field_is_sent_with_a_warning(sandbox, engine, worker):
    # One more kind of warning than the generated data has: an unmapped gender.
    data = sandbox.dataset
    renamed = next(data.customer(i)["id"] for i in range(data.customer_count)
                   if data.expected_reason("customer", i) is None)  # fmt: skip
    requests.patch(
        f"{sandbox.vtex_url}/__sandbox__/customers/{renamed}", json={"gender": "x"}, timeout=10
    ).raise_for_status()
    truth = customer_warnings(sandbox, {renamed: {"gender": "x"}})
    assert any("BIRTHDATE_DROPPED" in codes for codes in truth.values())
    assert "SEX_UNMAPPED" in truth[renamed]

    run = sync("customers")
    counts = run["counts"]
    assert counts["warned"] == len(truth)
    assert counts["sent"] == expected(sandbox)["customers"]["sent"]  # warned records are sent
    listed = warnings_of(run["id"])
    assert {w["key"] for w in listed} == set(truth)
    assert Counter(w["code"] for w in listed) == Counter(c for cs in truth.values() for c in cs)
    for warning in listed:
        assert warning["stream"] == "profiles" and warning["description"]
        assert warning["field"] in ("birthDate", "sex")
    birth = warnings_of(run["id"], "--reason", "BIRTHDATE_DROPPED")
    assert birth and {w["code"] for w in birth} == {"BIRTHDATE_DROPPED"}

    text = invoke("sync", "rejects", str(run["id"]), "--warnings").stdout
    assert "SEX_UNMAPPED: 1 record(s) sent without a field: gender is not one of" in text
    assert f"  profiles      {renamed}" in text
    assert f"warned {len(truth)}" in invoke("sync", "status", str(run["id"])).stdout
    invoke("sync", "rejects", str(run["id"]), "--warnings", "--unresolved", expect=2)
    assert_strict_sandbox_refused_nothing(sandbox)

    # A second run sends nothing, so it warns about nothing.
    again = sync("customers")
    assert again["counts"]["sent"] == 0 and again["counts"]["warned"] == 0
    assert warnings_of(again["id"]) == []


def test_warnings_never_hold_personal_data(sandbox, engine, worker):
    run = sync("customers")
    data = sandbox.dataset
    for warning in warnings_of(run["id"]):
        index = next(i for i in range(data.customer_count)
                     if data.customer(i)["id"] == warning["key"])  # fmt: skip
        doc = data.customer(index)
        values = [v for k, v in doc.items() if k != "id" and isinstance(v, str) and len(v) > 3]
        assert not any(value in warning["message"] for value in values)
