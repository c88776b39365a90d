"""Contract tests without the shared specs: a clear failure in CI, a clear skip on a laptop."""

from __future__ import annotations

import pytest

from tests.helpers.specs import in_ci, require_specs


@pytest.mark.parametrize(
    ("value", "ci"),
    [("true", True), ("1", True), ("yes", True), ("", False), ("false", False), ("0", False)],
)
def test_ci_is_read_from_the_environment(monkeypatch, value, ci):
    monkeypatch.setenv("CI", value)
    assert in_ci() is ci


def test_missing_specs_fail_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no-such-spec\.json.*CI must run"):
        require_specs("vtex", ["no-such-spec.json"])


def test_missing_specs_skip_locally(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"no-such-spec\.json.*\.\./shared/specs"):
        require_specs("vtex", ["no-such-spec.json"])
