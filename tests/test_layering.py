"""The shape of the code: no import circle, no import against the layering, no oversized module.

Every import of ``etl/``, ``workers/``, ``schemas/`` and ``celeryconfig.py`` is read with ``ast``,
lazy imports inside functions included, and checked against the parts of the project's layering
picture (``../shared/reference/layering.json``; ``docs/architecture.md`` draws it):

* no circle between modules, however long;
* the core (Engine, Clients, State, Mapping, Base) never imports its doors (Faces), the Celery
  layer, Celery or kombu themselves, or the sandbox;
* clients, state and mapping know no engine.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("etl", "workers", "schemas", "celeryconfig.py")

PARTS: dict[str, tuple[str, ...]] = {
    "Faces": ("etl/cli/", "etl/webhooks/", "etl/console/", "etl/demo.py", "etl/doctor.py"),
    "Celery": ("workers/", "celeryconfig.py"),
    "Engine": ("etl/sync/",),
    "Clients": (
        "etl/vtex/",
        "etl/synerise/",
        "etl/http.py",
        "etl/ratelimit.py",
        "etl/retry.py",
        "etl/apiusage.py",
    ),
    "State": ("etl/state/", "etl/lease.py"),
    "Mapping": ("schemas/",),
    "Base": (
        "etl/__init__.py",
        "etl/errors.py",
        "etl/config.py",
        "etl/redaction.py",
        "etl/infra.py",
        "etl/connections.py",
    ),
    "Sandbox": ("etl/sandbox/",),
}
"""Each part's folders (ending in ``/``) and files. A new module must be placed in one."""

CORE = ("Engine", "Clients", "State", "Mapping", "Base")
NEVER: tuple[tuple[str, str, str], ...] = (
    *((core, "Faces", "the core never imports its doors") for core in CORE),
    *((core, "Celery", "the core never imports the Celery seam") for core in CORE),
    *((core, "Sandbox", "the product never needs the emulators") for core in CORE),
    ("Clients", "Engine", "clients know no engine"),
    ("State", "Engine", "state knows no engine"),
    ("Mapping", "Engine", "mapping knows no engine"),
)
"""(from part, to part, why): imports that must not exist."""

NEVER_EXTERNAL = {part: ("celery", "kombu") for part in CORE}
"""Third-party packages a part must not import: Celery lives behind ``workers/``."""

MAX_LINES = 900


@dataclass(frozen=True)
class Import:
    target: str
    """A module of the tree (``etl.sync.runs``) or a third-party top-level name (``celery``)."""
    line: int


@dataclass
class Module:
    name: str
    path: str
    """Relative to the tree's root, with ``/``."""
    imports: list[Import] = field(default_factory=list)


def load_tree(root: Path, sources: Iterable[str] = SOURCES) -> dict[str, Module]:
    """Every module under ``sources`` with its imports, module-level and lazy alike."""
    files: dict[str, Path] = {}
    for source in sources:
        base = root / source
        for path in [base] if base.suffix == ".py" else sorted(base.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    modules = {name: Module(name, p.relative_to(root).as_posix()) for name, p in files.items()}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _targets(node, package):
                resolved = _resolve(target, modules)
                if resolved != name:
                    modules[name].imports.append(Import(resolved, node.lineno))
    return modules


def _targets(node: ast.AST, package: str) -> Iterator[str]:
    """The dotted names an import statement may load (``from a import b``: ``a.b`` or ``a``)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        yield from (f"{base}.{alias.name}" for alias in node.names)


def _resolve(target: str, modules: dict[str, Module]) -> str:
    """The longest module of the tree the name starts with, else its third-party top level."""
    name = target
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or target.partition(".")[0]


def parts_of(path: str) -> list[str]:
    """The parts a path belongs to (exactly one, for a well-drawn picture)."""
    return [
        part
        for part, members in PARTS.items()
        if any(path == m or (m.endswith("/") and path.startswith(m)) for m in members)
    ]


def part_of(path: str) -> str | None:
    found = parts_of(path)
    return found[0] if len(found) == 1 else None


def circles(modules: dict[str, Module]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for target in {i.target for i in modules[name].imports if i.target in modules}:
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            group = stack[stack.index(name) :]
            del stack[stack.index(name) :]
            if len(group) > 1:
                found.append(sorted(group))

    for name in sorted(modules):
        if name not in index:
            visit(name)
    return found


def violations(modules: dict[str, Module]) -> list[str]:
    """Every import against ``NEVER`` or ``NEVER_EXTERNAL``, as ``path:line: what (why)``."""
    never = {(source, target): why for source, target, why in NEVER}
    found = []
    for module in modules.values():
        source = part_of(module.path)
        for imported in module.imports:
            if imported.target in modules:
                target = part_of(modules[imported.target].path)
                why = never.get((source, target)) if source and target else None
            else:
                forbidden = NEVER_EXTERNAL.get(source or "", ())
                why = "Celery lives behind workers/" if imported.target in forbidden else None
                target = imported.target
            if why:
                found.append(
                    f"{module.path}:{imported.line}: {source} imports {imported.target}"
                    f" ({target}): {why}"
                )
    return list(dict.fromkeys(found))  # one line for ``from a import b, c``


@pytest.fixture(scope="module")
def tree() -> dict[str, Module]:
    return load_tree(REPO)


def test_every_module_belongs_to_one_part(tree):
    unplaced = {m.path: parts_of(m.path) for m in tree.values() if part_of(m.path) is None}
    assert not unplaced, f"place each in exactly one of PARTS (and the picture): {unplaced}"
    for members in PARTS.values():
        for member in members:
            assert (REPO / member).exists(), f"PARTS names {member}, which does not exist"


def test_no_import_circle(tree):
    assert circles(tree) == []


def test_no_import_against_the_layering(tree):
    assert violations(tree) == []


def test_no_module_is_over_900_lines():
    sizes = {
        path.relative_to(REPO).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for source in SOURCES
        for path in ([REPO / source] if source.endswith(".py") else (REPO / source).rglob("*.py"))
    }
    oversized = {path: n for path, n in sizes.items() if n > MAX_LINES}
    assert not oversized, f"split these modules: {oversized}"


def test_the_checks_see_lazy_imports_circles_and_forbidden_imports(tmp_path):
    """The checks above on a small tree with one of each defect (so they can fail)."""
    files = {
        "etl/__init__.py": "",
        "etl/sync/__init__.py": "",
        "etl/sync/runs.py": "from etl.sync import pipeline\n",
        "etl/sync/pipeline.py": "def later():\n    from etl.sync.runs import run_chunk\n",
        "etl/state/__init__.py": "",
        "etl/state/store.py": "def lazy():\n    import etl.sync.runs\n",
        "etl/errors.py": "def f():\n    from kombu import Queue\n    from workers.app import app\n",
        "workers/__init__.py": "",
        "workers/app.py": "import celery\nfrom etl.sync import runs\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = load_tree(tmp_path, ("etl", "workers"))
    assert circles(modules) == [["etl.sync.pipeline", "etl.sync.runs"]]
    assert sorted(violations(modules)) == [
        "etl/errors.py:2: Base imports kombu (kombu): Celery lives behind workers/",
        "etl/errors.py:3: Base imports workers.app (Celery): the core never imports the Celery"
        " seam",
        "etl/state/store.py:2: State imports etl.sync.runs (Engine): state knows no engine",
    ]


def test_the_rules_cover_the_projects_layering_picture():
    """``../shared/reference/layering.json`` is the picture the project keeps: each of its
    "never" rules is enforced here, and its parts agree with ``PARTS`` for every path that
    exists."""
    picture_path = REPO.parent / "shared" / "reference" / "layering.json"
    if not picture_path.is_file():
        pytest.skip(f"the layering picture is not next to the repository ({picture_path})")
    picture = json.loads(picture_path.read_text(encoding="utf-8"))
    enforced = {(source, target) for source, target, _ in NEVER}
    assert {(source, target) for source, target, *_ in picture["never"]} <= enforced
    for part, described in picture["parts"].items():
        for path in described["is"]:
            if (REPO / path).exists():
                assert part_of(path) == part, path
