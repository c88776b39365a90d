"""The shared API specs the contract tests read, and what those tests do without them.

The specs live next to the repository, in ``../shared/specs`` (VTEX's OpenAPI files). Missing
specs must not pass unnoticed: in CI (``CI`` set, as CI services do) the tests that need them
fail with a message saying so; on a developer's machine they are skipped with the same message.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pytest

__all__ = ["in_ci", "require_specs", "specs_folder"]

REPO = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    """``CI`` is set to something other than an empty, ``0``, ``false`` or ``no`` value."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def specs_folder(kind: str) -> Path:
    """``../shared/specs/<kind>`` next to the repository (or next to a folder above it, for a
    checkout kept in a subfolder such as a git worktree)."""
    for parent in REPO.parents:
        candidate = parent / "shared" / "specs" / kind
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "specs" / kind


def require_specs(kind: str, names: Iterable[str]) -> Path:
    """The folder holding every file in ``names``; otherwise fail (CI) or skip (locally).

    Call it from a test or a fixture: the outcome belongs to the test that needs the specs.
    """
    folder = specs_folder(kind)
    missing = [name for name in names if not (folder / name).is_file()]
    if not missing:
        return folder
    message = (
        f"the {kind.upper()} specs are missing ({', '.join(missing)} not in {folder}); "
        "put the shared specs next to the repository, at ../shared/specs"
    )
    if in_ci():
        pytest.fail(f"{message} (CI must run the contract tests)", pytrace=False)
    pytest.skip(message)
