"""The pure parts of the bench harness: parsing, ratios, the Markdown writer."""

import re

import pytest

from bench.load import (
    LUA_SCRIPT,
    LoadResult,
    Probe,
    parse_queries,
    parse_wrk_output,
    scenario_paths,
)
from bench.report import END, INTRO, START, Result, markdown_table, ratio, replace_block

WRK_STDOUT = """Running 2s test @ http://127.0.0.1:8000/floor/products/?page_size=50
  2 threads and 32 connections
  Latency Distribution
     50%   74.70ms
  818 requests in 2.00s, 15.85MB read
Requests/sec:    408.87
bench-json: {"requests": 818, "ok": 800, "non_2xx": 18, "duration_s": 2.000000, \
"bytes": 16620000, "errors": {"connect": 0, "read": 2, "write": 0, "status": 18, \
"timeout": 1}, "latency_ms": {"p50": 74.700, "p90": 98.100, "p99": 113.000, \
"mean": 76.500, "max": 120.000}}
"""


def load(rps: float, **changes: object) -> LoadResult:
    fields: dict = {
        "requests": int(rps * 10),
        "ok": int(rps * 10),
        "non_2xx": 0,
        "duration_s": 10.0,
        "bytes": 1000,
        "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
        "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0, "mean": 1.5, "max": 4.0},
    }
    return LoadResult(**(fields | changes))


def result(scenario: str, target: str, rps: float, queries: int | None = 1) -> Result:
    return Result(scenario, target, f"/{target}/", load(rps), Probe(200, 512, queries))


def test_parse_wrk_output_reads_the_json_line_among_wrk_output():
    parsed = parse_wrk_output(WRK_STDOUT)

    assert parsed.requests == 818
    assert parsed.ok == 800
    assert parsed.latency_ms["p99"] == 113.0
    assert parsed.errors["timeout"] == 1
    # req/s counts 2xx only; errors add socket errors to non-2xx, not wrk's status count twice.
    assert parsed.rps == 400.0
    assert parsed.error_count == 18 + 2 + 1


def test_parse_wrk_output_without_the_json_line_is_an_error():
    with pytest.raises(ValueError, match="bench-json"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_rps_of_a_zero_length_run_is_zero():
    assert load(0.0, duration_s=0.0).rps == 0.0


@pytest.mark.parametrize(
    ("header", "queries"),
    [
        ('db;dur=1.20;desc="7 queries", app;dur=3.40', 7),
        ('db;dur=0.00;desc="0 queries", app;dur=0.50', 0),
        ('db;dur=0.30;desc="1 query", app;dur=0.50', 1),
        ("app;dur=0.50", None),
        (None, None),
    ],
)
def test_parse_queries_reads_the_count_of_the_server_timing_header(header, queries):
    assert parse_queries(header) == queries


def test_scenario_paths():
    assert scenario_paths("list", "api", [3, 1]) == ["/api/products/?page_size=50"]
    assert scenario_paths("detail", "ninja", [3, 1]) == [
        "/ninja/products/3/",
        "/ninja/products/1/",
    ]


def test_ratio_compares_req_per_s_within_the_same_scenario():
    results = [
        result("list", "naive", 50),
        result("list", "floor", 400),
        result("list", "api", 200),
        result("detail", "naive", 100),
        result("detail", "api", 300),
    ]
    api_list, api_detail = results[2], results[4]

    assert ratio(results, api_list, "naive") == 4.0
    assert ratio(results, api_list, "floor") == 0.5
    assert ratio(results, api_detail, "naive") == 3.0
    # No floor row in the detail scenario, and a baseline with no 2xx: no ratio.
    assert ratio(results, api_detail, "floor") is None
    assert ratio([result("list", "naive", 0), api_list], api_list, "naive") is None


def test_markdown_table_has_one_row_per_result_with_ratios():
    results = [result("list", "naive", 50, queries=52), result("list", "floor", 1234.5, None)]

    lines = markdown_table(results).splitlines()

    assert lines[0].startswith("| scenario | target | req/s | p50 ms | p99 ms | queries/request")
    assert len(lines) == 4
    assert lines[2] == "| list | naive | 50.0 | 1.0 | 3.0 | 52 | 512 | 0 | 1.00x | 0.04x |"
    assert lines[3] == "| list | floor | 1,234 | 1.0 | 3.0 | - | 512 | 0 | 24.69x | 1.00x |"


def test_replace_block_replaces_only_the_marked_block():
    text = f"# Title\n\nBefore.\n\n{START}\nold table\n{END}\n\nAfter, by hand.\n"

    new = replace_block(text, "new table\n")

    assert new == f"# Title\n\nBefore.\n\n{START}\nnew table\n{END}\n\nAfter, by hand.\n"
    assert replace_block(new, "new table") == new


def test_replace_block_appends_the_markers_to_a_file_without_them():
    new = replace_block("# Notes\n\nKeep me.\n", "table")

    assert new == f"# Notes\n\nKeep me.\n\n{START}\ntable\n{END}\n"


def test_replace_block_on_an_empty_file_starts_with_the_intro():
    new = replace_block("", "table")

    assert new.startswith(INTRO.rstrip())
    assert new.endswith(f"{START}\ntable\n{END}\n")


def test_report_lua_prints_every_field_the_parser_reads():
    keys = set(re.findall(r'"(\w+)": ', LUA_SCRIPT.read_text()))

    assert set(LoadResult.__dataclass_fields__) <= keys
    assert {"connect", "read", "write", "status", "timeout"} <= keys
    assert {"p50", "p90", "p99"} <= keys
