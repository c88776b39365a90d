"""Synerise's request models (the JSON Schemas vendored in ``etl/sandbox/synerise_schemas``), as
the emulator checks every body it receives against them.

``jsonschema`` (Draft 2020-12) is the authority: an item is valid when it finds no error, and its
errors become the API's ``Error`` objects. Running it on every item would cost the emulator
130 µs per profile and 360 µs per transaction (it builds a validator per sub-schema it descends
into), more than the rest of the emulator's work, so each schema is also compiled once into a
plain predicate (`compile_predicate`) that answers "valid?" in a few µs; ``jsonschema`` then runs
only on the items the predicate doubts. The predicate knows the keywords the vendored schemas
use and refuses to compile any other, so a new keyword can never be skipped silently;
``tests/etl/sandbox/test_synerise_models.py`` checks that both agree on thousands of payloads
and their mutations.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from etl.sandbox.synerise.rules import FieldError

__all__ = ["Model", "SchemaCompileError", "compile_predicate", "model", "schema_document"]

Predicate = Callable[[Any], bool]

ROUTE_MODELS: dict[str, tuple[str, bool]] = {
    "synerise.clients_batch": ("clients_batch", True),
    "synerise.clients_create": ("clients", False),
    "synerise.transactions_batch": ("transactions_batch", True),
    "synerise.transactions": ("transactions", False),
    "synerise.events_batch": ("events_batch", True),
    "synerise.events_custom": ("events_custom", False),
    "synerise.catalog_items_batch": ("catalogs_items_batch", True),
    "synerise.catalog_bags": ("catalogs_bags", False),
}
"""Route name -> (schema file, whether the body is an array of such items)."""

_ANNOTATIONS = frozenset({"$schema", "$comment", "title", "description", "examples", "default"})


class SchemaCompileError(ValueError):
    """A schema uses a keyword the predicate compiler does not know."""


@functools.cache
def schema_document(name: str) -> dict[str, Any]:
    """A vendored schema file (``clients_batch`` ...), read once from the package data."""
    folder = resources.files("etl.sandbox") / "synerise_schemas"
    return dict(json.loads((folder / f"{name}.json").read_text(encoding="utf-8")))


class Model:
    """One request model: a compiled predicate and the ``jsonschema`` validator behind it."""

    def __init__(self, schema: dict[str, Any]) -> None:
        Draft202012Validator.check_schema(schema)
        self.validator = Draft202012Validator(schema)
        self.is_valid = compile_predicate(schema)

    def errors(self, item: Any, path: str) -> list[FieldError]:
        """The item's violations of the model as ``Error`` objects (``[]``: it is valid)."""
        if self.is_valid(item):
            return []
        found: dict[str, FieldError] = {}
        for error in self.validator.iter_errors(item):
            for field_error in _field_errors(error, path):
                found.setdefault(field_error.field, field_error)
        # jsonschema's order is not stable for map-valued fields: answer in field order
        return sorted(found.values(), key=lambda field_error: field_error.field)


@functools.cache
def model(route: str) -> Model:
    """The model of a route's items (compiled on first use, then shared)."""
    name, is_array = ROUTE_MODELS[route]
    schema = schema_document(name)
    return Model(schema["items"] if is_array else schema)


# -- jsonschema errors to the API's Error objects --------------------------------------------


def _field_errors(error: ValidationError, path: str) -> Iterable[FieldError]:
    where = _join(path, error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "required" and isinstance(error.instance, dict):
        for name in error.validator_value:
            if name not in error.instance:
                yield FieldError(_join(where, [name]), f"{name} is required", None, kind="schema")
        return
    rejected = error.instance
    if "propertyNames" in error.relative_schema_path:  # reported at the object: name the key
        where = _join(where, [str(error.instance)])
    title = schema.get("title")
    if error.validator == "not" and isinstance(error.validator_value, dict):
        title = error.validator_value.get("title", title)
    describe = _MESSAGES.get(str(error.validator))
    message = describe(error.validator_value) if describe else "breaks the model"
    yield FieldError(
        where or "body", f"{message} ({title})" if title else message, rejected, kind="schema"
    )


def _join(path: str, parts: Iterable[Any]) -> str:
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else part)
    return path


_MESSAGES: dict[str, Callable[[Any], str]] = {
    "type": lambda expected: f"must be of type {expected}",
    "enum": lambda values: f"must be one of {values}",
    "const": lambda value: f"must be {value!r}",
    "pattern": lambda _: "does not match the required pattern",
    "not": lambda _: "holds a value the model forbids",
    "anyOf": lambda _: "matches none of the allowed forms",
    "oneOf": lambda _: "must match exactly one allowed form",
    "minimum": lambda limit: f"must be at least {limit}",
    "maximum": lambda limit: f"must be at most {limit}",
    "minLength": lambda limit: f"must have at least {limit} character(s)",
    "maxLength": lambda limit: f"must have at most {limit} character(s)",
    "minItems": lambda limit: f"must have at least {limit} item(s)",
    "maxItems": lambda limit: f"must have at most {limit} item(s)",
    "propertyNames": lambda _: "name not allowed",
    "additionalProperties": lambda _: "property not allowed",
}
"""What a failed keyword means, without the value (messages may reach logs)."""


# -- the predicate compiler ------------------------------------------------------------------


def compile_predicate(schema: Any) -> Predicate:
    """A function telling whether an instance is valid against ``schema``, as ``jsonschema``'s
    Draft 2020-12 validator would.

    Raises:
        SchemaCompileError: the schema uses a keyword outside the supported set.
    """
    if schema is True:
        return lambda value: True
    if schema is False:
        return lambda value: False
    if not isinstance(schema, dict):
        raise SchemaCompileError(f"a schema must be an object or a boolean, not {schema!r}")
    checks = []
    for keyword, argument in schema.items():
        if keyword in _ANNOTATIONS or keyword.startswith("x-"):
            continue
        make = _KEYWORDS.get(keyword)
        if make is None:
            raise SchemaCompileError(f"keyword {keyword!r} is not supported")
        checks.append(make(argument, schema))
    if len(checks) == 1:
        return checks[0]

    def every(value: Any) -> bool:
        for check in checks:  # noqa: SIM110 - a loop: faster than all() on this hot path
            if not check(value):
                return False
        return True

    return every


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPES: dict[str, Predicate] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    "integer": lambda v: _is_number(v) and (isinstance(v, int) or float(v).is_integer()),
}


def _type(argument: Any, schema: dict[str, Any]) -> Predicate:
    names = argument if isinstance(argument, list) else [argument]
    tests = [_TYPES[name] for name in names]
    if len(tests) == 1:
        return tests[0]
    return lambda value: any(test(value) for test in tests)


def _properties(argument: dict[str, Any], schema: dict[str, Any]) -> Predicate:
    compiled = [(name, compile_predicate(sub)) for name, sub in argument.items()]

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name, test in compiled:  # noqa: SIM110 - as above
            if name in value and not test(value[name]):
                return False
        return True

    return check


def _additional(argument: Any, schema: dict[str, Any]) -> Predicate:
    if "patternProperties" in schema:
        raise SchemaCompileError("additionalProperties beside patternProperties")
    known, test = frozenset(schema.get("properties", ())), compile_predicate(argument)
    return lambda value: not isinstance(value, dict) or all(
        test(inner) for name, inner in value.items() if name not in known
    )


def _property_names(argument: Any, schema: dict[str, Any]) -> Predicate:
    test = compile_predicate(argument)
    return lambda value: not isinstance(value, dict) or all(test(name) for name in value)


def _required(argument: list[str], schema: dict[str, Any]) -> Predicate:
    return lambda value: not isinstance(value, dict) or all(name in value for name in argument)


def _items(argument: Any, schema: dict[str, Any]) -> Predicate:
    if "prefixItems" in schema:
        raise SchemaCompileError("items beside prefixItems")
    test = compile_predicate(argument)

    def check(value: Any) -> bool:
        if isinstance(value, list):
            for item in value:
                if not test(item):
                    return False
        return True

    return check


def _pattern(argument: str, schema: dict[str, Any]) -> Predicate:
    search = re.compile(argument).search
    return lambda value: not isinstance(value, str) or search(value) is not None


def _bound(kind: Predicate, compare: Callable[[Any], bool]) -> Predicate:
    return lambda value: not kind(value) or compare(value)


_Compare = Callable[[int, int], bool]


def _sized(kind: type[str] | type[list[Any]]) -> Callable[[int, _Compare], Predicate]:
    def make(limit: int, compare: _Compare) -> Predicate:
        return lambda value: not isinstance(value, kind) or compare(len(value), limit)

    return make


def _json_equal(one: Any, two: Any) -> bool:
    """Equality as JSON Schema means it: ``true`` is not ``1``, ``1.0`` is ``1``."""
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(map(_json_equal, one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_json_equal(one[k], two[k]) for k in one)
    return bool(one == two)


def _enum(argument: list[Any], schema: dict[str, Any]) -> Predicate:
    return lambda value: any(_json_equal(value, allowed) for allowed in argument)


def _any_of(argument: list[Any], schema: dict[str, Any]) -> Predicate:
    tests = [compile_predicate(sub) for sub in argument]
    return lambda value: any(test(value) for test in tests)


def _all_of(argument: list[Any], schema: dict[str, Any]) -> Predicate:
    tests = [compile_predicate(sub) for sub in argument]
    return lambda value: all(test(value) for test in tests)


def _one_of(argument: list[Any], schema: dict[str, Any]) -> Predicate:
    tests = [compile_predicate(sub) for sub in argument]
    return lambda value: sum(1 for test in tests if test(value)) == 1


def _not(argument: Any, schema: dict[str, Any]) -> Predicate:
    test = compile_predicate(argument)
    return lambda value: not test(value)


_STRING, _ARRAY = _sized(str), _sized(list)
_KEYWORDS: dict[str, Callable[[Any, dict[str, Any]], Predicate]] = {
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional,
    "propertyNames": _property_names,
    "required": _required,
    "items": _items,
    "pattern": _pattern,
    "enum": _enum,
    "const": lambda argument, _: lambda value: _json_equal(value, argument),
    "minimum": lambda limit, _: _bound(_is_number, lambda v: v >= limit),
    "maximum": lambda limit, _: _bound(_is_number, lambda v: v <= limit),
    "exclusiveMinimum": lambda limit, _: _bound(_is_number, lambda v: v > limit),
    "exclusiveMaximum": lambda limit, _: _bound(_is_number, lambda v: v < limit),
    "minLength": lambda limit, _: _STRING(limit, lambda n, m: n >= m),
    "maxLength": lambda limit, _: _STRING(limit, lambda n, m: n <= m),
    "minItems": lambda limit, _: _ARRAY(limit, lambda n, m: n >= m),
    "maxItems": lambda limit, _: _ARRAY(limit, lambda n, m: n <= m),
    "not": _not,
    "anyOf": _any_of,
    "allOf": _all_of,
    "oneOf": _one_of,
}
