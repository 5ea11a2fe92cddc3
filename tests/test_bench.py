"""The pure parts of the bench harness: parsing, ratios, the Markdown writer."""

import os
import re
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from bench.__main__ import check_deep_pages, parse_args, server_rows
from bench.cursors import path_of
from bench.load import (
    LUA_SCRIPT,
    LoadResult,
    Probe,
    Row,
    clamp_depths,
    deep_path,
    parse_queries,
    parse_wrk_output,
    plan_rows,
    scenario_paths,
    serves,
    service_variant,
)
from bench.report import (
    END,
    INTRO,
    START,
    Result,
    depth_ratio,
    depth_summary,
    markdown_table,
    ratio,
    replace_block,
)
from bench.serialization import (
    Runs,
    check_same_json,
    left_to_python,
    measure_runs,
    repeat_for,
)
from bench.serialization import parse_args as serialization_args
from bench.serialization import table as serialization_table
from bench.server import DeepPage

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


def deep(target: str, depth: int, rps: float, p50: float) -> Result:
    latency = {"p50": p50, "p90": p50 * 2, "p99": p50 * 3, "mean": p50, "max": p50 * 4}
    return Result(
        "deep", target, f"/{target}/", load(rps, latency_ms=latency), Probe(200, 512, 2), depth
    )


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


def test_scenario_paths_of_stats_and_none_for_deep():
    assert scenario_paths("stats", "api", [3]) == ["/api/stats/categories/"]
    with pytest.raises(ValueError, match="deep"):
        scenario_paths("deep", "api", [3])


def test_stats_and_deep_are_served_by_naive_and_api_only():
    assert serves("list", "floor") and serves("detail", "ninja")
    assert serves("stats", "naive") and serves("deep", "api")
    assert not serves("stats", "floor") and not serves("deep", "ninja")


def test_clamp_depths_keeps_depths_with_a_row_once_in_order():
    assert clamp_depths([900_000, 0, 10_000], 1_000_000) == [0, 10_000, 900_000]
    assert clamp_depths([0, 10_000, 900_000], 100_000) == [0, 10_000]
    # A depth equal to the product count has no row left; duplicates are measured once.
    assert clamp_depths([300, 100, 100, 0], 300) == [0, 100]
    assert clamp_depths([-50, 50], 10) == []


def test_deep_path_naive_by_page_number_api_by_cursor():
    cursors = {0: "/api/products/?page_size=50", 100: "/api/products/?cursor=abc&page_size=50"}

    assert deep_path("naive", 0, cursors) == "/naive/products/?page_size=50&page=1"
    assert deep_path("naive", 100, cursors) == "/naive/products/?page_size=50&page=3"
    assert deep_path("naive", 900_000, cursors) == "/naive/products/?page_size=50&page=18001"
    assert deep_path("api", 100, cursors) == cursors[100]
    with pytest.raises(KeyError):
        deep_path("api", 10_000, cursors)


def test_plan_rows_skips_targets_without_the_endpoint_and_measures_each_depth():
    cursors = {0: "/api/c0", 100: "/api/c100"}

    rows = plan_rows(["list", "stats", "deep"], ["naive", "floor", "api"], [7], [0, 100], cursors)

    assert [(r.scenario, r.label) for r in rows] == [
        ("list", "naive"),
        ("list", "floor"),
        ("list", "api"),
        ("stats", "naive"),
        ("stats", "api"),
        ("deep", "naive @ 0"),
        ("deep", "api @ 0"),
        ("deep", "naive @ 100"),
        ("deep", "api @ 100"),
    ]
    assert rows[4] == Row("stats", "api", None, ["/api/stats/categories/"])
    assert rows[-1] == Row("deep", "api", 100, ["/api/c100"])
    assert rows[-2].paths == ["/naive/products/?page_size=50&page=3"]


def test_parse_args_depths_and_scenarios():
    assert parse_args(["--smoke"]).depths == [0, 100]
    assert parse_args([]).depths == [0, 10_000, 900_000]
    assert parse_args(["--depths", "0,5000"]).depths == [0, 5000]
    assert parse_args([]).scenarios == ["list", "detail", "stats", "deep"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--depths", "0,75"],  # not a page boundary of the naive page-number path
        ["--depths", "-50"],
        ["--depths", "x"],
        ["--scenarios", "stats,deep", "--targets", "floor,ninja"],
    ],
)
def test_parse_args_rejects(argv, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_path_of_keeps_path_and_query_only():
    url = "http://127.0.0.1/api/products/?page_size=50&cursor=eyJ2Ij.abc"

    assert path_of(url) == "/api/products/?page_size=50&cursor=eyJ2Ij.abc"


def test_check_deep_pages_fails_when_a_page_starts_elsewhere(monkeypatch):
    first_ids = {"http://h/naive/p3": 41, "http://h/api/c100": 42}
    monkeypatch.setattr("bench.__main__.first_result_id", first_ids.get)
    pages = {100: DeepPage("/api/c100", first_id=42)}
    api = Row("deep", "api", 100, ["/api/c100"])
    naive = Row("deep", "naive", 100, ["/naive/p3"])

    check_deep_pages("http://h", [Row("list", "api", None, ["/nowhere"]), api], pages)
    with pytest.raises(RuntimeError, match=r"naive @ 100: /naive/p3 starts at id 41, not at id 42"):
        check_deep_pages("http://h", [api, naive], pages)


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


def test_deep_ratios_compare_the_same_depth_across_targets_and_depths_within_a_target():
    results = [
        deep("naive", 0, 100, p50=10.0),
        deep("api", 0, 200, p50=5.0),
        deep("naive", 10_000, 20, p50=50.0),
        deep("api", 10_000, 190, p50=6.0),
        result("list", "naive", 50),
    ]
    naive_deep, api_deep = results[2], results[3]

    # vs naive: req/s at the same depth, not at depth 0.
    assert ratio(results, api_deep, "naive") == 9.5
    assert ratio(results, results[1], "naive") == 2.0
    # vs depth 0: the same target's first page, by latency percentile.
    assert depth_ratio(results, naive_deep) == 5.0
    assert depth_ratio(results, api_deep) == pytest.approx(1.2)
    assert depth_ratio(results, api_deep, "p99") == pytest.approx(1.2)
    assert depth_ratio(results, results[0]) == 1.0
    assert depth_ratio(results, results[4]) is None
    assert depth_ratio([api_deep], api_deep) is None  # no first page measured


def test_markdown_table_labels_depths_and_ends_with_the_deep_summary():
    results = [
        result("stats", "naive", 20),
        result("stats", "api", 2000),
        deep("naive", 0, 100, p50=10.0),
        deep("api", 0, 200, p50=5.0),
        deep("naive", 900_000, 2, p50=400.0),
        deep("api", 900_000, 190, p50=6.0),
    ]

    lines = markdown_table(results).splitlines()

    assert len(lines) == 2 + 6 + 2
    assert lines[3].startswith("| stats | api | 2,000 | ") and lines[3].endswith("| 100.00x | - |")
    assert lines[4].startswith("| deep | naive @ 0 | 100 | 10.0 | 30.0 | 2 | - |")
    assert lines[7].startswith("| deep | api @ 900,000 | 190 | 6.0 | 18.0 |")
    assert lines[7].endswith("| 95.00x | - |")
    assert lines[8] == ""
    assert lines[9] == depth_summary(results)
    assert lines[9] == (
        "Deep pages, p50 latency relative to the first page (depth 0): "
        "naive 900,000 rows 40.00x; api 900,000 rows 1.20x."
    )
    assert depth_summary(results[:4]) == ""


def test_markdown_table_has_one_row_per_result_with_ratios():
    results = [result("list", "naive", 50, queries=52), result("list", "floor", 1234.5, None)]

    lines = markdown_table(results).splitlines()

    assert lines[0].startswith(
        "| scenario | target | req/s | p50 ms | p99 ms | queries/request | DB CPU ms/request"
    )
    assert len(lines) == 4
    assert lines[2] == "| list | naive | 50.0 | 1.0 | 3.0 | 52 | - | 512 | 0 | 1.00x | 0.04x |"
    assert lines[3] == "| list | floor | 1,234 | 1.0 | 3.0 | - | - | 512 | 0 | 24.69x | 1.00x |"
    database = Result("list", "database", "/api/", load(100), Probe(200, 512, 1), None, 2.345)
    assert markdown_table([database]).splitlines()[2].startswith("| list | database | 100 ")
    assert "| 1 | 2.35 | 512 | 0 |" in markdown_table([database])


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


def count_row(exact: int, estimate: int, exact_ms: float = 50.0, estimated_ms: float = 0.2):
    from bench.counts import Row

    return Row("Product.objects.all()", exact, estimate, True, exact_ms, estimated_ms)


def test_count_row_ratio_error_and_verdict():
    row = count_row(1_000_000, 1_030_000)

    assert row.speedup == pytest.approx(250.0)
    assert row.error == pytest.approx(3.0)
    assert row.verdict == "yes"
    assert count_row(1000, 900, estimated_ms=1.0).verdict == (
        "no (under 100x, off by more than 5%)"
    )
    assert count_row(0, 0).error == 0.0


def test_count_row_that_fell_back_to_an_exact_count_misses():
    from bench.counts import Row

    row = Row("q", 10, 10, False, 1.0, 0.001)

    assert row.verdict == "no (fell back to exact)"


def test_counts_table_has_one_row_per_queryset():
    from bench.counts import table

    lines = table([count_row(1_000_000, 990_000)]).splitlines()

    assert len(lines) == 3
    assert lines[2] == (
        "| `Product.objects.all()` | 1,000,000 | 990,000 | -1.00% | 50.00 | 0.200 | 250x | yes |"
    )


def test_counts_replace_block_keeps_the_other_blocks():
    from bench.counts import END as COUNTS_END
    from bench.counts import START as COUNTS_START

    def replace_counts(text: str, block: str) -> str:
        return replace_block(text, block, COUNTS_START, COUNTS_END)

    text = f"# B\n\n{START}\nload\n{END}\n"
    new = replace_counts(text, "counts v1")

    assert new == f"{text}\n{COUNTS_START}\ncounts v1\n{COUNTS_END}\n"
    assert replace_counts(new, "counts v2") == new.replace("counts v1", "counts v2")


def test_zoo_targets_and_table():
    from bench.zoo import Case, met, table, target

    assert (target(0.75), target(0.25), target(0.0)) == (">= 2x", ">= 0.95x", ">= 0.95x")
    assert met(0.5, 2.0) and not met(0.5, 1.9)
    assert met(0.0, 0.96) and not met(0.0, 0.94)
    case = Case("hyperlinked", "HyperlinkedDeviceSerializer", 1.0, {})
    times = {"drf": [30.0, 31.0, 29.0], "drf_scale": [10.0, 9.0, 11.0]}
    assert table({("hyperlinked", 100): (case, times)}).splitlines()[2] == (
        "| hyperlinked | HyperlinkedDeviceSerializer | 100% | 100 | 30.00 | 10.00 | 3.00x "
        "| >= 2x | yes |"
    )


def test_the_database_and_uncached_targets_serve_the_api_list_from_servers_of_their_own():
    assert scenario_paths("list", "database", [3]) == ["/api/products/?page_size=50"]
    assert scenario_paths("list", "uncached", [3]) == ["/api/products/?page_size=50"]
    assert service_variant("database") == {
        "REPRESENTATION_CACHE": "off",
        "RENDER_IN_DATABASE": "on",
    }
    assert service_variant("uncached") == {
        "REPRESENTATION_CACHE": "off",
        "RENDER_IN_DATABASE": "off",
    }
    assert service_variant("api") == {}
    assert serves("list", "database") and not serves("detail", "database")
    assert not serves("stats", "uncached") and not serves("deep", "database")
    assert serves("detail", "floor")

    rows = plan_rows(["list", "detail"], ["database", "api", "uncached"], [7], [], {})

    assert [(r.scenario, r.target) for r in rows] == [
        ("list", "database"),
        ("list", "api"),
        ("list", "uncached"),
        ("detail", "api"),
    ]
    # The shared server first, then one per variant; results keep the order of the rows.
    assert server_rows(rows) == {"": [1, 3], "database": [0], "uncached": [2]}
    assert server_rows(rows[:1]) == {"database": [0]}


def runs(wall: list[float], app: float | None = None, db: float | None = None) -> Runs:
    cpu = {name: [ms] * len(wall) for name, ms in (("app", app), ("db", db)) if ms is not None}
    return Runs(wall, cpu)


def test_serialization_table_reports_cpu_on_either_side_and_ratios_to_drf_and_floor():
    results = {
        1000: {
            "drf": runs([100.0, 90.0, 110.0], app=95.0, db=2.0),
            "floor": runs([20.0], app=18.0, db=2.0),
            "database": runs([10.0, 12.5], app=4.0, db=9.25),
            "serpy": runs([50.0]),
        }
    }

    lines = serialization_table(results).splitlines()

    assert lines[0].startswith("| rows | implementation | median ms | min ms | max ms ")
    assert "| app CPU ms | DB CPU ms | DRF / this | this / floor |" in lines[0]
    assert lines[2] == "| 1,000 | drf | 100.0 | 90.0 | 110.0 | 95.0 | 2.0 | 1.00x | 5.00x |"
    assert lines[4] == "| 1,000 | database | 11.2 | 10.0 | 12.5 | 4.0 | 9.2 | 8.89x | 0.56x |"
    assert lines[5] == "| 1,000 | serpy | 50.0 | 50.0 | 50.0 | - | - | 2.00x | 2.50x |"
    assert left_to_python({1000: 0, 10_000: 3}) == (
        "\n\nRows `database` left to Python (rendered by the compiled plan): "
        "0 of 1,000; 3 of 10,000."
    )
    assert left_to_python({}) == ""


def test_check_same_json_holds_the_database_path_to_drf_json():
    same = {"drf": lambda n: b'[{"a":1}]', "database": lambda n: b'[{"a": 1}]'}
    check_same_json(same | {"queries": lambda n: b""}, 5)

    with pytest.raises(SystemExit, match="database does not render the same JSON as drf"):
        check_same_json(same | {"database": lambda n: b'[{"a":"1"}]'}, 5)


def test_measure_runs_reads_each_clock_around_each_run():
    ticks = iter(range(100))
    calls: list[str] = []

    def serialize(name):
        return lambda n: calls.append(name) or b""

    measured = measure_runs(
        {"drf": serialize("drf"), "database": serialize("database")},
        10,
        3,
        {"db": lambda: next(ticks) / 8},  # 125 ms a tick: exact in binary
    )

    assert calls == ["drf", "database", "database", "drf", "drf", "database"]
    assert all(len(r.wall_ms) == 3 for r in measured.values())
    assert measured["drf"].cpu_ms == {"db": [125.0, 125.0, 125.0]}
    assert measured["database"].mean_cpu("db") == 125.0
    assert measured["database"].mean_cpu("app") is None


def test_repeat_for_runs_fewer_times_past_ten_thousand_rows_but_never_under_five():
    assert [repeat_for(n, 15) for n in (1000, 10_000, 30_000, 100_000)] == [15, 15, 5, 5]
    assert repeat_for(20, 2) == 2


def test_serialization_args_sizes_sections_and_smoke():
    args = serialization_args([])
    assert args.rows == [1000, 10_000, 100_000] and args.sections == ["flat", "nested"]
    smoke = serialization_args(["--smoke", "--sections", "nested"])
    assert (smoke.rows, smoke.repeat, smoke.no_write, smoke.sections) == ([20], 2, True, ["nested"])
    assert smoke.database_url.endswith("/drf_scale_serial_smoke")


@pytest.mark.postgres
@pytest.mark.once
def test_serialization_smoke_renders_the_same_json_four_ways_flat_and_nested():
    """The harness end to end on a tiny catalog of its own database: every implementation,
    ``database`` included, renders DRF's JSON (check_same_json), flat and nested."""
    url = urlsplit(os.environ["DATABASE_URL"])._replace(path="/drf_scale_serial_smoke")
    done = subprocess.run(
        [sys.executable, "-m", "bench.serialization", "--smoke", "--database-url", url.geturl()],
        cwd=os.path.dirname(os.path.dirname(__file__)),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    tables = done.stdout.split("#### ")[1:]
    assert [t.split(" ", 1)[0] for t in tables] == ["Flat", "Nested"]
    for section in tables:
        names = [line.split(" | ")[1] for line in section.splitlines() if line.startswith("| 20 ")]
        assert {"drf", "compiled", "floor", "database"} <= set(names)
        assert "Rows `database` left to Python" in section
