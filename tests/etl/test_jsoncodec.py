"""``etl.jsoncodec``: orjson's speed with the standard library's answers."""

from __future__ import annotations

import json
import math

import pytest

from etl import jsoncodec


def test_reads_what_the_standard_library_reads():
    text = '{"id": "a-1", "email": "ana@example.com", "n": 3, "f": 0.1, "ok": true, "x": null}'
    assert jsoncodec.loads(text) == json.loads(text)
    assert jsoncodec.loads(text.encode()) == json.loads(text)
    assert jsoncodec.loads('["\\u00e9", "é"]') == ["é", "é"]


def test_what_orjson_refuses_is_read_by_the_standard_library():
    assert math.isinf(jsoncodec.loads("[1e400]")[0])
    with pytest.raises(ValueError):
        jsoncodec.loads(b"{not json")


def test_writes_compact_text_the_standard_library_reads_back():
    value = [{"id": "a-1", "name": "Zoë", "n": 3, "f": 0.5, "tags": [], "x": None}]
    text = jsoncodec.dumps(value)
    assert isinstance(text, str) and " " not in text
    assert json.loads(text) == value
    with pytest.raises(TypeError):
        jsoncodec.dumps({1, 2})
