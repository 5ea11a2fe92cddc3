"""Load on the service with wrk, and one probe request for what a request costs."""

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("report.lua")
JSON_MARKER = "bench-json: "
THREADS = 2
_QUERIES = re.compile(r'desc="(\d+) quer')
SCENARIOS = ("list", "detail", "stats", "deep")
# Targets served by the /api/ routes of a server of their own, started with these variables:
# the list without the representation cache, through the compiled read plan (uncached) or
# built as JSON by PostgreSQL (database).
SERVICE_VARIANTS = {
    "uncached": {"REPRESENTATION_CACHE": "off", "RENDER_IN_DATABASE": "off"},
    "database": {"REPRESENTATION_CACHE": "off", "RENDER_IN_DATABASE": "on"},
}
TARGETS = ("naive", "api", "floor", "ninja", *SERVICE_VARIANTS)
# Scenarios only some targets serve: floor and ninja have no stats and no cursor pages; the
# variants serve the list only.
SCENARIO_TARGETS = {
    "detail": ("naive", "api", "floor", "ninja"),
    "stats": ("naive", "api"),
    "deep": ("naive", "api"),
}
LIST_PAGE_SIZE = 50
# Rows skipped before the page of the deep scenario (multiples of LIST_PAGE_SIZE).
DEPTHS = (0, 10_000, 900_000)


@dataclass(frozen=True)
class LoadResult:
    """What wrk measured in one run (latencies in ms)."""

    requests: int
    ok: int
    non_2xx: int
    duration_s: float
    bytes: int
    errors: dict[str, int]
    latency_ms: dict[str, float]

    @property
    def rps(self) -> float:
        """Successful (2xx) responses per second."""
        return self.ok / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        """Socket errors and timeouts plus non-2xx responses."""
        socket_errors = sum(n for kind, n in self.errors.items() if kind != "status")
        return socket_errors + self.non_2xx


@dataclass(frozen=True)
class Probe:
    """One request made outside the load: status, body size, SQL queries."""

    status: int
    bytes: int
    queries: int | None


@dataclass(frozen=True)
class Row:
    """One measured row: a scenario on a target (at a depth, for deep), its paths."""

    scenario: str
    target: str
    depth: int | None
    paths: list[str]

    @property
    def label(self) -> str:
        return target_label(self.target, self.depth)


def target_label(target: str, depth: int | None) -> str:
    """The target, with the depth in the deep scenario: ``api @ 10,000``."""
    return target if depth is None else f"{target} @ {depth:,}"


def serves(scenario: str, target: str) -> bool:
    """Whether ``target`` has the endpoint of ``scenario``."""
    return target in SCENARIO_TARGETS.get(scenario, TARGETS)


def clamp_depths(depths: Iterable[int], products: int) -> list[int]:
    """The depths at which the dataset still has a row, once each, shallowest first."""
    return sorted({depth for depth in depths if 0 <= depth < products})


def service_variant(target: str) -> dict[str, str]:
    """The variables of the server ``target`` needs of its own; {} for the shared one."""
    return SERVICE_VARIANTS.get(target, {})


def route(target: str) -> str:
    """The URL prefix of ``target``: a variant serves /api/ on a server of its own."""
    return "api" if target in SERVICE_VARIANTS else target


def scenario_paths(scenario: str, target: str, ids: list[int]) -> list[str]:
    """The paths of list, detail and stats: the first page, each id's detail, the stats."""
    target = route(target)
    if scenario == "list":
        return [f"/{target}/products/?page_size={LIST_PAGE_SIZE}"]
    if scenario == "detail":
        return [f"/{target}/products/{product_id}/" for product_id in ids]
    if scenario == "stats":
        return [f"/{target}/stats/categories/"]
    raise ValueError(f"no fixed paths for scenario {scenario!r}")


def deep_path(target: str, depth: int, cursor_paths: Mapping[int, str]) -> str:
    """The page ``depth`` rows deep: naive by page number, api by its cursor path."""
    if target == "naive":
        page = depth // LIST_PAGE_SIZE + 1
        return f"/naive/products/?page_size={LIST_PAGE_SIZE}&page={page}"
    return cursor_paths[depth]


def plan_rows(
    scenarios: Iterable[str],
    targets: Iterable[str],
    ids: list[int],
    depths: Iterable[int],
    cursor_paths: Mapping[int, str],
) -> list[Row]:
    """Every row to measure, scenario by scenario (deep: depth by depth), in target order."""
    rows: list[Row] = []
    for scenario in scenarios:
        served = [target for target in targets if serves(scenario, target)]
        if scenario != "deep":
            rows += [Row(scenario, t, None, scenario_paths(scenario, t, ids)) for t in served]
            continue
        for depth in depths:
            rows += [Row(scenario, t, depth, [deep_path(t, depth, cursor_paths)]) for t in served]
    return rows


def parse_wrk_output(stdout: str) -> LoadResult:
    """Read the JSON line that report.lua prints at the end of a wrk run."""
    for line in stdout.splitlines():
        if line.startswith(JSON_MARKER):
            return LoadResult(**json.loads(line.removeprefix(JSON_MARKER)))
    raise ValueError(f"no {JSON_MARKER!r} line in wrk output:\n{stdout}")


def parse_queries(server_timing: str | None) -> int | None:
    """The query count of a ``Server-Timing`` header (``desc="N queries"``), if any."""
    match = _QUERIES.search(server_timing or "")
    return int(match.group(1)) if match else None


def ensure_wrk() -> str:
    """The path of wrk, installed with apt-get when missing."""
    if path := shutil.which("wrk"):
        return path
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    if path := shutil.which("wrk"):
        return path
    raise RuntimeError("wrk is not installed and apt-get could not install it")


def run_wrk(
    wrk: str, base_url: str, paths_file: Path, connections: int, seconds: int
) -> LoadResult:
    """Load the paths listed in ``paths_file`` round-robin for ``seconds``."""
    first_path = paths_file.read_text().splitlines()[0]
    command = [
        wrk,
        "--threads",
        str(min(THREADS, connections)),
        "--connections",
        str(connections),
        "--duration",
        f"{seconds}s",
        "--timeout",
        "30s",
        "--latency",
        "--script",
        str(LUA_SCRIPT),
        base_url + first_path,
    ]
    env = {**os.environ, "BENCH_PATHS": str(paths_file)}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stderr}{done.stdout}")
    return parse_wrk_output(done.stdout)


def first_result_id(url: str) -> int | None:
    """The id of the first result of the page at ``url``; None when the page is empty."""
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            results = json.load(response).get("results") or []
    except (OSError, ValueError) as error:
        raise RuntimeError(f"GET {url}: {error}") from error
    return results[0]["id"] if results else None


def probe(url: str) -> Probe:
    """GET ``url`` once and record its status, body size and query count."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    return Probe(status, len(body), parse_queries(headers.get("Server-Timing")))
