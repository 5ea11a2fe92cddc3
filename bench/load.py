"""Load on the service with wrk, and one probe request for what a request costs."""

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("report.lua")
JSON_MARKER = "bench-json: "
THREADS = 2
_QUERIES = re.compile(r'desc="(\d+) quer')
SCENARIOS = ("list", "detail")
TARGETS = ("naive", "api", "floor", "ninja")
LIST_PAGE_SIZE = 50


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


def scenario_paths(scenario: str, target: str, ids: list[int]) -> list[str]:
    """The paths a scenario requests: the first list page, or the detail of each id."""
    if scenario == "list":
        return [f"/{target}/products/?page_size={LIST_PAGE_SIZE}"]
    return [f"/{target}/products/{product_id}/" for product_id in ids]


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


def probe(url: str) -> Probe:
    """GET ``url`` once and record its status, body size and query count."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    return Probe(status, len(body), parse_queries(headers.get("Server-Timing")))
