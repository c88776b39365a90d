"""Enrichers and attribute rules (``schemas.enrichment``): loading, running, rejecting one record,
and the settings that configure them."""

from __future__ import annotations

from typing import Any

import pytest

from etl.errors import ConfigError, SkippableRecordError
from schemas.enrichment import AttributeRules, Enrichment, NamedEnricher, Veto, load_enrichers
from schemas.mapping_config import MappingConfig
from tests.etl.test_config import load as settings
from tests.helpers import enrichers


def profile() -> dict[str, Any]:
    return {"customId": "u1", "email": "ana@example.com", "attributes": {"a": 1, "b": 2, "c": 3}}


def enrichment(*funcs: Any, rules: AttributeRules | None = None) -> Enrichment:
    named = tuple(NamedEnricher(f"hook{i}", func) for i, func in enumerate(funcs))
    return Enrichment(named, rules or AttributeRules())


def rejected(run: Enrichment, payload: dict[str, Any]) -> SkippableRecordError:
    with pytest.raises(SkippableRecordError) as caught:
        run.apply("profile", "doc-1", {"id": "doc-1"}, payload)
    assert caught.value.key == "doc-1"
    return caught.value


def test_nothing_configured_returns_the_payload_itself():
    payload = profile()
    assert Enrichment().apply("profile", "k", {}, payload) is payload


def test_enrichers_run_in_order_and_may_return_none_after_changing_the_payload():
    def first(kind: str, document: Any, payload: dict[str, Any]) -> None:
        payload["attributes"]["seen"] = [kind, document["id"]]

    def second(kind: str, document: Any, payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "attributes": {**payload["attributes"], "after": "first"}}

    out = enrichment(first, second).apply("profile", "k", {"id": "d"}, profile())
    assert out["attributes"]["seen"] == ["profile", "d"]
    assert out["attributes"]["after"] == "first"


def test_a_veto_a_bug_a_wrong_return_and_a_non_json_payload_reject_the_record():
    def veto(*_: Any) -> None:
        raise Veto("staff account")

    def bug(*_: Any) -> None:
        raise KeyError("ana@example.com")

    error = rejected(enrichment(veto), profile())
    assert (error.reason, error.message) == ("VETOED", "hook0: staff account")
    error = rejected(enrichment(bug), profile())
    assert error.reason == "ENRICHMENT_ERROR"
    assert error.message.startswith("hook0 raised KeyError")
    assert "ana@example.com" not in error.message  # personal data masked
    error = rejected(enrichment(lambda *_: ["not", "a", "dict"]), profile())
    assert error.message == "hook0 returned list, not a dict"
    error = rejected(enrichment(lambda k, d, p: {**p, "when": object()}), profile())
    assert error.reason == "ENRICHMENT_ERROR" and "not JSON" in error.message
    error = rejected(enrichment(lambda k, d, p: {**p, "score": float("nan")}), profile())
    assert "not JSON" in error.message


def test_attribute_rules_exclude_then_include_then_rename():
    rules = AttributeRules(include=("a", "b", "new"), exclude=("b",), rename=(("a", "alpha"),))
    out = enrichment(rules=rules).apply("profile", "k", {}, profile())
    assert out["attributes"] == {"alpha": 1}
    assert out["customId"] == "u1" and out["email"] == "ana@example.com"  # top level untouched
    emptied = enrichment(rules=AttributeRules(exclude=("a", "b", "c")))
    assert "attributes" not in emptied.apply("profile", "k", {}, profile())
    transaction = {"orderId": "1", "metadata": {"status": "invoiced", "coupon": "X"}}
    out = emptied.apply("transaction", "1", {}, transaction)
    assert out["metadata"] == {"status": "invoiced", "coupon": "X"}
    out = enrichment(rules=AttributeRules(exclude=("coupon",))).apply("transaction", "1", {},
                                                                        transaction)  # fmt: skip
    assert out["metadata"] == {"status": "invoiced"}


def test_load_by_path_by_entry_point_and_every_installed_one(monkeypatch):
    assert load_enrichers(None) == ()
    assert [e.func for e in load_enrichers(["tests.helpers.enrichers:marked"])] == [
        enrichers.marked
    ]
    assert load_enrichers(["tests.helpers.enrichers.marked"])[0].func is enrichers.marked
    monkeypatch.syspath_prepend(str(enrichers.EXAMPLE_PACKAGE))
    installed = load_enrichers(None)
    assert [e.name for e in installed] == ["loyalty"]
    assert [e.name for e in load_enrichers(["loyalty", "tests.helpers.enrichers:marked"])] == [
        "loyalty", "tests.helpers.enrichers:marked",
    ]  # fmt: skip
    assert load_enrichers([]) == ()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("no_such_module:enrich", "ModuleNotFoundError"),
        ("tests.helpers.enrichers:nothing", "AttributeError"),
        ("tests.helpers.enrichers:MARKED", "is not callable"),
        ("unknown-entry-point", "not an installed vtex_synerise.enrichers entry point"),
    ],
)
def test_what_cannot_be_loaded_is_named(name, why):
    with pytest.raises(ValueError, match=why):
        load_enrichers([name])


def test_settings_parse_enrichers_and_attribute_rules():
    assert settings().enrichers is None
    assert settings(ENRICHERS="none").enrichers == ()
    loaded = settings(
        ENRICHERS="loyalty, pkg.mod:func",
        ATTRIBUTES_INCLUDE="a,b",
        ATTRIBUTES_EXCLUDE="c",
        ATTRIBUTES_RENAME="a:alpha, b:beta",
    )
    assert loaded.enrichers == ("loyalty", "pkg.mod:func")
    assert loaded.attributes_include == ("a", "b") and loaded.attributes_exclude == ("c",)
    assert loaded.attributes_rename == (("a", "alpha"), ("b", "beta"))
    for variable, raw in (
        ("ENRICHERS", "pkg mod"),
        ("ENRICHERS", "pkg:1bad"),
        ("ATTRIBUTES_RENAME", "a"),
        ("ATTRIBUTES_RENAME", "a:b,a:c"),
        ("ATTRIBUTES_EXCLUDE", "a,,b"),
    ):
        with pytest.raises(ConfigError, match=f"^{variable}: expected"):
            settings(**{variable: raw})


def test_mapping_config_loads_the_enrichers_and_refuses_a_bad_rename():
    config = MappingConfig.from_settings(
        settings(ENRICHERS="tests.helpers.enrichers:marked", ATTRIBUTES_RENAME="a:alpha")
    )
    assert config.enrichment.enrichers[0].func is enrichers.marked
    assert config.enrichment.rules.rename == (("a", "alpha"),)
    with pytest.raises(ConfigError, match=r"^ENRICHERS: expected .*no_such_module"):
        MappingConfig.from_settings(settings(ENRICHERS="no_such_module:f"))
    with pytest.raises(ConfigError, match=r"^ATTRIBUTES_RENAME: .*overwrite a transaction"):
        MappingConfig.from_settings(settings(ATTRIBUTES_RENAME="tier:coupon"))
    with pytest.raises(ConfigError, match=r"^ATTRIBUTES_RENAME: .*reserved by Synerise"):
        MappingConfig.from_settings(settings(ATTRIBUTES_RENAME="tier:status"))
