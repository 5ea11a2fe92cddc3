"""``python -m bench.cache``: the representation cache of /api/products/, against its floors.

One run on the bench database, each server gunicorn (2 sync workers) with the cache in Redis,
loaded by wrk, which also counts the ``X-Cache: hit`` responses of each row:

1. Detail over a fixed sample of ids: cached /api/ (warmed first), /api/ without the cache
   (a second server, REPRESENTATION_CACHE=off), /naive/ (plain DRF) and /constant/ (a fixed
   body from a plain Django view: the framework's floor; the issue expects cached ≥ 0.8x it).
2. The 304 path: cached detail with ``If-None-Match: <its ETag>``, checked once first (a 304
   whose Server-Timing counts 0 queries).
3. The list ``/api/products/?page_size=20`` (its rows from one multi-get), warm, cached and not.
4. The hit ratio from an empty cache (keys ``drf_scale:*`` deleted) under ids drawn from a
   Zipf distribution (s=1.1) over every product.

Without ``--products`` the database is used as it is (``python -m bench`` seeds it).
``--smoke`` runs it all in well under a minute on a small SQLite dataset and writes nothing.
The exit status is 1 when a request failed or the 304 check did not hold.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from unittest import mock

import redis

import bench.load
from bench.__main__ import BENCHMARKS, DEFAULT_DATABASE_URL, REAL, RESULTS, SMOKE, entry
from bench.load import LUA_SCRIPT, THREADS, LoadResult, ensure_wrk, parse_queries, run_wrk
from bench.report import cpu_model, git_commit, memory_gib, replace_block, software_versions
from bench.server import (
    ROOT,
    ensure_database,
    inspect,
    manage,
    prepare_dataset,
    serve,
    service_env,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
KEY_PREFIX = "drf_scale:"
START = "<!-- bench:cache:start -->"
END = "<!-- bench:cache:end -->"
WORKERS = 2
LIST_PATH = "/api/products/?page_size=20"
ZIPF_S = 1.1
ZIPF_PATHS_PER_S = 5000  # more paths than the run makes requests: wrk does not wrap around
FLOOR_EXPECTED = 0.8
EXTENSIONS = ("paths", "lua", "hits")  # the files of a row in the work directory
_APP_MS = re.compile(r"app;dur=([\d.]+)")
ALL_IDS = """
import json
from shop.models import Product
print(json.dumps(list(Product.objects.order_by("id").values_list("id", flat=True))))
"""
# report.lua, plus request headers, one expected status (counted as 2xx, any other as a
# failure) and the count of X-Cache: hit responses, written to a file when the run is done.
LUA = Template("""dofile([==[$report]==])
local report_setup, report_response, report_done = setup, response, done
local threads_seen = {}
$headers
hits = 0

function setup(thread)
   report_setup(thread)
   table.insert(threads_seen, thread)
end

function response(status, headers, body)
   if headers["X-Cache"] == "hit" then
      hits = hits + 1
   end
   report_response(status == $status and 200 or 599, headers, body)
end

function done(summary, latency, requests)
   report_done(summary, latency, requests)
   local total = 0
   for _, thread in ipairs(threads_seen) do
      total = total + thread:get("hits")
   end
   local out = io.open([==[$hits_file]==], "w")
   out:write(total)
   out:close()
end
""")


@dataclass(frozen=True)
class Sample:
    """One request outside the load: status, size and the headers the cache sets."""

    status: int
    bytes: int
    x_cache: str | None
    etag: str | None
    queries: int | None
    app_ms: float | None


@dataclass(frozen=True)
class Row:
    """One measured row: what wrk saw, how many responses were hits, one sample request."""

    measurement: str
    target: str
    path: str
    load: LoadResult
    hits: int
    sample: Sample
    ideal_hit_ratio: float | None = None  # Zipf: what an unbounded cache reaches on the paths

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.load.ok if self.load.ok else 0.0


@dataclass(frozen=True)
class Runner:
    """How rows are loaded: wrk, a work directory, connections and seconds."""

    wrk: str
    work: Path
    connections: int
    warmup_s: int
    duration_s: int

    def measure(
        self,
        base_url: str,
        measurement: str,
        target: str,
        paths: list[str],
        *,
        headers: Mapping[str, str] | None = None,
        status: int = 200,
        warm: bool = True,
    ) -> Row:
        """Warm up, take a sample request, load for the duration. Without ``warm`` the load
        starts from the cache as it is and the sample comes after it."""
        print(f"{measurement}: {target}", file=sys.stderr, flush=True)
        slug = re.sub(r"\W+", "-", f"{measurement} {target}").strip("-")
        paths_file, script, hits_file = (self.work / f"{slug}.{ext}" for ext in EXTENSIONS)
        paths_file.write_text("\n".join(paths) + "\n")
        script.write_text(lua_script(headers or {}, status, hits_file))
        url = base_url + paths[0]
        sample = None
        with mock.patch.object(bench.load, "LUA_SCRIPT", script):
            if warm:
                run_wrk(self.wrk, base_url, paths_file, self.connections, self.warmup_s)
                sample = fetch(url, headers)
            load = run_wrk(self.wrk, base_url, paths_file, self.connections, self.duration_s)
        hits = int(hits_file.read_text())
        return Row(measurement, target, paths[0], load, hits, sample or fetch(url, headers))


def lua_script(headers: Mapping[str, str], status: int, hits_file: Path) -> str:
    """The wrk script of one row (see LUA)."""
    lines = [f"wrk.headers[ [==[{k}]==] ] = [==[{v}]==]" for k, v in headers.items()]
    return LUA.substitute(
        report=LUA_SCRIPT, headers="\n".join(lines), status=status, hits_file=hits_file
    )


def fetch(url: str, headers: Mapping[str, str] | None = None) -> Sample:
    """GET ``url`` once; a non-2xx status is a Sample too."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, got, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, got, body = error.code, error.headers, error.read()
    timing = got.get("Server-Timing")
    app = _APP_MS.search(timing or "")
    return Sample(
        status,
        len(body),
        got.get("X-Cache"),
        got.get("ETag"),
        parse_queries(timing),
        float(app.group(1)) if app else None,
    )


def flush_cache(redis_url: str) -> int:
    """Delete every key of the representation cache; how many there were."""
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{KEY_PREFIX}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    return len(keys)


def zipf_paths(ids: list[int], count: int, s: float = ZIPF_S, seed: int = 1) -> list[str]:
    """``count`` detail paths, ids drawn with probability ∝ 1/rank**s, ranks a shuffle of ids."""
    rng = random.Random(seed)
    ranked = rng.sample(ids, len(ids))
    cum_weights = list(itertools.accumulate(rank**-s for rank in range(1, len(ids) + 1)))
    return [f"/api/products/{pk}/" for pk in rng.choices(ranked, cum_weights=cum_weights, k=count)]


def ideal_hit_ratio(paths: list[str], requests: int) -> float:
    """The hit ratio of an unbounded cache, empty at first, on the first ``requests`` paths."""
    seen = paths[: max(1, min(requests, len(paths)))]
    return 1 - len(set(seen)) / len(seen)


def measure_all(
    runner: Runner, env: dict[str, str], ids: list[int], all_ids: list[int], zipf_count: int
) -> tuple[dict[str, Row], Sample]:
    """Every row, the cached server first, then the uncached one; and the 304 check."""
    detail = {t: [f"/{t}/products/{pk}/" for pk in ids] for t in ("api", "naive", "constant")}
    detail["redis"] = [f"/constant/redis/products/{pk}/" for pk in ids]
    rows: dict[str, Row] = {}
    flush_cache(REDIS_URL)  # entries of another dataset may have the same ids
    with serve(env, WORKERS, runner.work / "cached.log") as url:
        for path in detail["api"]:  # each sampled id once: the cache is warm
            fetch(url + path)
        rows["detail cached"] = runner.measure(url, "detail", "cached /api/", detail["api"])
        etag = {"If-None-Match": rows["detail cached"].sample.etag or '"none"'}
        check = fetch(url + detail["api"][0], etag)
        rows["304"] = runner.measure(
            url, "304", "cached /api/, If-None-Match", detail["api"][:1], headers=etag, status=304
        )
        rows["detail naive"] = runner.measure(url, "detail", "/naive/", detail["naive"])
        rows["detail constant"] = runner.measure(url, "detail", "/constant/", detail["constant"])
        rows["detail redis"] = runner.measure(
            url, "detail", "/constant/redis/ (+1 Redis GET)", detail["redis"]
        )
        rows["list cached"] = runner.measure(url, "list", "cached /api/", [LIST_PATH])
        flush_cache(REDIS_URL)
        paths = zipf_paths(all_ids, zipf_count)
        zipf = runner.measure(url, f"Zipf s={ZIPF_S}", "cached /api/, empty", paths, warm=False)
        rows["zipf"] = replace(zipf, ideal_hit_ratio=ideal_hit_ratio(paths, zipf.load.requests))
    with serve({**env, "REPRESENTATION_CACHE": "off"}, WORKERS, runner.work / "off.log") as url:
        rows["detail uncached"] = runner.measure(url, "detail", "uncached /api/", detail["api"])
        rows["list uncached"] = runner.measure(url, "list", "uncached /api/", [LIST_PATH])
    return rows, check


ORDER = ("detail cached", "detail uncached", "detail naive", "detail constant", "detail redis")
ORDER += ("304",)
ORDER += ("list cached", "list uncached", "zipf")
RATIOS = {
    "detail cached / constant": ("detail cached", "detail constant"),
    "detail cached / constant + Redis": ("detail cached", "detail redis"),
    "detail cached / uncached": ("detail cached", "detail uncached"),
    "detail cached / naive": ("detail cached", "detail naive"),
    "list cached / uncached": ("list cached", "list uncached"),
    "304 / detail cached": ("304", "detail cached"),
}


def ratios(rows: Mapping[str, Row]) -> dict[str, float | None]:
    """req/s of one row over another's, by RATIOS."""
    out: dict[str, float | None] = {}
    for name, (a, b) in RATIOS.items():
        out[name] = rows[a].load.rps / rows[b].load.rps if rows[b].load.rps else None
    return out


def _hits(row: Row) -> str:
    """The share of X-Cache: hit responses, where the header says hit or miss."""
    if row.sample.x_cache is None or "/" in row.sample.x_cache:
        return "-"
    ideal = row.ideal_hit_ratio
    return f"{row.hit_ratio:.1%}" + ("" if ideal is None else f" (unbounded: {ideal:.1%})")


def table(rows: Mapping[str, Row]) -> str:
    lines = [
        "| measurement | target | req/s | p50 ms | p99 ms | hits under load "
        "| X-Cache | status | queries | app ms | bytes | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in (rows[key] for key in ORDER):
        s = r.sample
        lines.append(
            f"| {r.measurement} | {r.target} | {r.load.rps:,.0f} | {r.load.latency_ms['p50']:.1f} "
            f"| {r.load.latency_ms['p99']:.1f} | {_hits(r)} | {s.x_cache or '-'} | {s.status} "
            f"| {'-' if s.queries is None else s.queries} "
            f"| {'-' if s.app_ms is None else f'{s.app_ms:.2f}'} | {s.bytes:,} "
            f"| {r.load.error_count:,} |"
        )
    return "\n".join(lines)


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def block(facts: Mapping[str, object], rows: Mapping[str, Row], check: Sample) -> str:
    """The Markdown between the markers: facts, command, verdicts and table."""
    f, r = facts, ratios(rows)
    floor = r["detail cached / constant"]
    zipf = rows["zipf"]
    return f"""### Representation cache: /api/products/ from Redis, against its floors

Measured {f["timestamp"]} at commit `{f["commit"]}` with `{f["command"]}`.

- Machine: {f["cores"]} cores ({f["cpu"]}), {f["memory_gib"]:.1f} GiB memory; load average \
{f["load_average"]:.2f} before the run
- Software: Python {f["python"]}, Django {f["django"]}, DRF {f["djangorestframework"]}, \
gunicorn {f["gunicorn"]} ({WORKERS} sync workers per server), {f["database"]}, the cache in \
Redis ({REDIS_URL}); wrk {f["wrk"]}, {f["threads"]} threads, {f["connections"]} connections, \
{f["duration_s"]} s per row after a {f["warmup_s"]} s warm-up, on the same machine
- Dataset: {f["products"]:,} products. detail = `GET /<target>/products/<id>/` round-robin over \
{f["detail_ids"]:,} sampled ids (cached: each fetched once before); uncached = a second server \
with `REPRESENTATION_CACHE=off`; constant = `/constant/products/<id>/`, a fixed \
{rows["detail constant"].sample.bytes}-byte body from a plain Django view (routing and \
middleware only), and the same after one Redis GET (the floor of a cache in Redis); \
304 = one cached detail with `If-None-Match: <its ETag>`; list = \
`GET {LIST_PATH}`; Zipf = {f["zipf_paths"]:,} detail paths, ids drawn with s={ZIPF_S} over all \
products, from an empty cache (keys `{KEY_PREFIX}*` deleted), no warm-up
- req/s counts the expected status (200; 304 for the 304 row); hits under load = responses with \
`X-Cache: hit`; X-Cache, status, queries and app ms (Server-Timing) come from one request \
outside the load; errors = socket errors, timeouts and unexpected statuses

Detail: cached / constant **{_x(floor)}** (the issue expects ≥ {FLOOR_EXPECTED}x: \
**{"yes" if floor is not None and floor >= FLOOR_EXPECTED else "no"}**), cached / constant \
after one Redis GET **{_x(r["detail cached / constant + Redis"])}**, cached / uncached \
**{_x(r["detail cached / uncached"])}**, cached / naive **{_x(r["detail cached / naive"])}**. \
304 checked before the load: status {check.status}, {check.queries} queries \
(**{"yes" if check_holds(check) else "no"}**); 304 / cached 200 \
**{_x(r["304 / detail cached"])}**. List: cached / uncached \
**{_x(r["list cached / uncached"])}**. Zipf: hit ratio **{zipf.hit_ratio:.1%}** over \
{zipf.load.ok:,} responses.

{table(rows)}"""


def check_holds(check: Sample) -> bool:
    """The 304 path: Not Modified, and no query."""
    return check.status == 304 and check.queries == 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__)
    parser.add_argument(
        "--products",
        type=int,
        help="seed this many products unless exactly that many exist "
        "(default: the database as it is; smoke 300)",
    )
    parser.add_argument("--duration", type=int, help="seconds per row (default 10; smoke 1)")
    parser.add_argument("--warmup", type=int, help="warm-up seconds per row (default 2; smoke 1)")
    parser.add_argument("--connections", type=int, help="wrk connections (default 32; smoke 8)")
    parser.add_argument(
        "--database-url", help=f"default {DEFAULT_DATABASE_URL}; smoke: a temporary SQLite file"
    )
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="small SQLite dataset, short runs, nothing written; fails on any failed request",
    )
    args = parser.parse_args(argv)
    defaults = SMOKE if args.smoke else {**REAL, "products": None}
    for name in ("products", "duration", "warmup", "connections"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    return args


def run(args: argparse.Namespace, command: str, work: Path) -> int:
    """Measure, report, and return the exit status."""
    wrk = ensure_wrk()
    load_average = os.getloadavg()[0]  # what else ran on the machine as we started
    timestamp = datetime.now(UTC)
    database_url = args.database_url or (
        f"sqlite:///{work}/bench.sqlite3" if args.smoke else DEFAULT_DATABASE_URL
    )
    env = {**service_env(database_url), "REDIS_URL": REDIS_URL}
    ensure_database(database_url)
    dataset = inspect(env) if args.products is None else prepare_dataset(env, args.products)
    if not dataset.products:
        raise RuntimeError(f"no products in {database_url}: pass --products or run python -m bench")
    out = manage(env, "shell", "-v", "0", "-c", ALL_IDS)
    all_ids: list[int] = json.loads(out.strip().splitlines()[-1])
    zipf_count = ZIPF_PATHS_PER_S * args.duration
    runner = Runner(wrk, work, args.connections, args.warmup, args.duration)
    rows, check = measure_all(runner, env, dataset.ids, all_ids, zipf_count)

    facts = {
        "timestamp": timestamp.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "commit": git_commit(ROOT),
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_gib": memory_gib(),
        "load_average": load_average,
        **software_versions(wrk),
        "database": dataset.database,
        "redis": REDIS_URL,
        "products": dataset.products,
        "detail_ids": len(dataset.ids),
        "zipf_paths": zipf_count,
        "zipf_s": ZIPF_S,
        "workers": WORKERS,
        "threads": min(THREADS, args.connections),
        "connections": args.connections,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
    }
    content = block(facts, rows, check)
    out_dir = work if args.smoke else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"{timestamp:%Y%m%dT%H%M%SZ}-cache.json"
    results = [
        {"key": key, **asdict(row), "rps": row.load.rps, "hit_ratio": row.hit_ratio}
        for key, row in rows.items()
    ]
    document = {"facts": facts, "check_304": asdict(check), "ratios": ratios(rows)}
    raw.write_text(json.dumps({**document, "rows": results}, indent=2) + "\n")
    print(content)
    if not (args.smoke or args.no_write):
        text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
        BENCHMARKS.write_text(
            replace_block(text, f"{content}\n\nRaw results: `{raw.relative_to(ROOT)}`", START, END)
        )
    failed = [
        f"{r.measurement} {r.target}" for r in rows.values() if r.load.error_count or not r.load.ok
    ]
    if failed:
        print(f"bench.cache: failed requests in {', '.join(failed)}", file=sys.stderr)
    if not check_holds(check):
        print(f"bench.cache: the 304 check did not hold: {check}", file=sys.stderr)
    return 1 if failed or not check_holds(check) else 0


def main(argv: list[str] | None = None) -> int:
    return entry("bench.cache", run, parse_args, argv, errors=(redis.RedisError,))


if __name__ == "__main__":
    sys.exit(main())
