"""ORJSONRenderer and ORJSONParser: DRF's JSON meaning, and DRF's errors."""

import bz2
import io
import ipaddress
import json
import uuid
from collections import namedtuple
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer

from drf_scale.renderers import ORJSONParser, ORJSONRenderer

Point = namedtuple("Point", "x y")
ODD_OFFSET = timezone(timedelta(hours=5, minutes=30, seconds=15))

VALUES = [
    {"text": "naïve ✓", "int": 3, "float": 1.5, "yes": True, "none": None, "list": [1, [2]]},
    [Decimal("1.10"), Decimal("-0.001")],
    {"utc": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "naive": datetime(2026, 1, 2)},
    {"odd offset": datetime(1900, 1, 1, tzinfo=ODD_OFFSET)},
    {"date": date(2026, 1, 2), "time": time(3, 4, 5, 6), "delta": timedelta(days=1, seconds=2)},
    {"uuid": uuid.UUID(int=7), "ip": ipaddress.ip_address("::1")},
    {"lazy": gettext_lazy("Invalid page."), "bytes": b"raw", "point": Point(1, 2)},
    {"set": {3}, "generator": (i for i in range(2)), "frozen": frozenset()},
    {"huge": 2**70, "tiny": -(2**70)},
    {1: "int key", None: "none key", 2.5: "float key"},
    {"line separators": "a\u2028b\u2029c"},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_renders_the_json_drf_renders(value):
    def fresh(value):  # generators are consumed by one render
        return {**value, "generator": (i for i in range(2))} if "generator" in value else value

    try:
        expected = JSONRenderer().render(fresh(value))
    except TypeError:  # DRF 3.16 does not encode IP addresses: neither do we, then
        with pytest.raises(TypeError):
            ORJSONRenderer().render(fresh(value))
        return
    rendered = ORJSONRenderer().render(fresh(value))
    assert json.loads(rendered) == json.loads(expected)
    assert b"\xe2\x80\xa8" not in rendered and b"\xe2\x80\xa9" not in rendered


def test_compact_output_is_byte_identical_for_plain_data():
    value = {"a": [1, "é", None, True], "b": {"c": "\u2028"}, "d": 0.1}
    assert ORJSONRenderer().render(value) == JSONRenderer().render(value)


def test_none_renders_an_empty_body():
    assert ORJSONRenderer().render(None) == b""


@pytest.mark.parametrize("accept", ["application/json; indent=4", "application/json; indent=2"])
def test_indent_requested_by_the_client_is_drfs(accept):
    value = {"a": [1, {"b": None}], "c": Decimal("2.50")}
    assert ORJSONRenderer().render(value, accept) == JSONRenderer().render(value, accept)
    assert ORJSONRenderer().render(value, None, {"indent": 4}) == JSONRenderer().render(
        value, None, {"indent": 4}
    )


def test_ascii_only_output_is_drfs():
    class ASCIIRenderer(ORJSONRenderer):
        ensure_ascii = True

    class DRFASCIIRenderer(JSONRenderer):
        ensure_ascii = True

    assert (
        ASCIIRenderer().render({"a": "é"})
        == DRFASCIIRenderer().render({"a": "é"})
        == (b'{"a":"\\u00e9"}')
    )


def test_what_drf_cannot_encode_raises_as_in_drf():
    with pytest.raises(TypeError, match="not JSON serializable"):
        ORJSONRenderer().render({"object": object()})
    with pytest.raises(ValueError, match="timezone-aware times"):
        ORJSONRenderer().render({"time": time(1, tzinfo=UTC)})


def test_a_non_finite_float_renders_as_null_where_drf_raises():
    assert ORJSONRenderer().render({"x": float("nan")}) == b'{"x":null}'
    with pytest.raises(ValueError):
        JSONRenderer().render({"x": float("nan")})


def test_views_render_204_empty_and_the_browsable_api(client, catalog):
    html = client.get("/api/products/?page_size=1", HTTP_ACCEPT="text/html")
    assert html.status_code == 200 and html["Content-Type"].startswith("text/html")
    assert b"&quot;results&quot;: [" in html.content  # DRF's indented JSON in the page
    response = client.get("/api/products/?page_size=1")
    assert response["Content-Type"] == "application/json"
    assert response.content == JSONRenderer().render(response.json())


# The parser.


def parse(parser, body: bytes, encoding: str = "utf-8"):
    return parser.parse(io.BytesIO(body), "application/json", {"encoding": encoding})


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": [1, 2.5, "x", null, true], "b": {}}',
        b"123456789012345678901234567890",
        b"-1e400",
        b'"\\ud800"',
        b'{"a": 1, "a": 2}',
        '"é"'.encode(),
    ],
)
def test_parses_what_drf_parses(body):
    assert parse(ORJSONParser(), body) == parse(JSONParser(), body)


@pytest.mark.parametrize("body", [b"{", b"NaN", b"\xff", b"\xef\xbb\xbf{}", b""])
def test_bad_json_is_drfs_parse_error(body):
    with pytest.raises(ParseError) as expected:
        parse(JSONParser(), body)
    with pytest.raises(ParseError) as raised:
        parse(ORJSONParser(), body)
    assert str(raised.value.detail) == str(expected.value.detail)
    assert str(raised.value.detail).startswith("JSON parse error - ")


def test_non_strict_parsing_accepts_nan_as_drf_does():
    class Lenient(ORJSONParser):
        strict = False

    assert json.dumps(parse(Lenient(), b"[NaN]")) == "[NaN]"


def test_other_charsets_are_decoded_as_drf_decodes_them():
    body = '{"a": "é"}'.encode("latin-1")
    assert parse(ORJSONParser(), body, "latin-1") == {"a": "é"}
    with pytest.raises(ParseError, match="Unsupported charset"):
        parse(ORJSONParser(), body, "no-such-charset")


def test_json_nested_past_the_depth_limit_is_a_parse_error():
    """orjson refuses nesting past 1,024 levels; Python's json, which then parses it, raises
    RecursionError past its own limit (near 1,000 levels on 3.11, deeper on 3.12+): a 500
    before, a 400 now."""
    depth = 100_000
    body = b"[" * depth + b"]" * depth
    with pytest.raises(ParseError, match="nested too deeply"):
        parse(ORJSONParser(), body)


def test_a_compressing_charset_is_refused_before_it_inflates_the_body():
    """bz2_codec would decompress a small body past DATA_UPLOAD_MAX_MEMORY_SIZE (any DRF)."""
    bomb = bz2.compress(b'{"a": "' + b"x" * 10_000_000 + b'"}')
    assert len(bomb) < 10_000
    with pytest.raises(ParseError, match='Unsupported charset "bz2_codec"'):
        parse(ORJSONParser(), bomb, "bz2_codec")


def test_a_bad_body_is_a_400_on_the_api(staff_client, catalog):
    response = staff_client.generic(
        "POST", "/api/products/", b'{"sku": ', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error - ")
