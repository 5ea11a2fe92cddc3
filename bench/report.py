"""The results of a run: machine facts, JSON, a Markdown table and a PNG chart."""

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.load import LIST_PAGE_SIZE, SERVICE_VARIANTS, LoadResult, Probe, target_label

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
INTRO = """# Benchmarks

Throughput and latency of the reference service in `example/`, measured by
`python -m bench` (`make bench`): the same product API served four ways,
`naive` (DRF defaults as tutorials write them), `api` (drf_scale), `floor`
(hand-written `values()` + orjson, the ceiling of what Django can do) and `ninja`
(Django Ninja). The block below is rewritten by each run; text outside it is kept.
"""


@dataclass(frozen=True)
class Result:
    """One scenario on one target."""

    scenario: str
    target: str
    path: str
    load: LoadResult
    probe: Probe
    depth: int | None = None  # rows before the page, in the deep scenario
    # CPU ms per request of the PostgreSQL backends serving the service, during the load
    db_cpu_ms: float | None = None

    @property
    def label(self) -> str:
        return target_label(self.target, self.depth)


@dataclass(frozen=True)
class Facts:
    """The machine, software, dataset and load settings a run was measured with."""

    timestamp: str
    command: str
    commit: str
    cpu: str
    cores: int
    memory_gib: float
    load_average: float
    os: str
    python: str
    django: str
    djangorestframework: str
    gunicorn: str
    wrk: str
    database: str
    cache: str
    products: int
    detail_ids: int
    depths: list[int]
    workers: int
    threads: int
    connections: int
    duration_s: int
    warmup_s: int


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    """Total memory, from the page count of the machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def git_commit(root: Path) -> str:
    """The short commit of the work tree, with ``+dirty`` when it has changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return git("rev-parse", "--short", "HEAD") + (
            "+dirty" if git("status", "--porcelain") else ""
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def software_versions(wrk: str) -> dict[str, str]:
    """Versions of Python, Django, DRF, gunicorn and wrk."""
    wrk_banner = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout
    return {
        "python": platform.python_version(),
        "django": version("django"),
        "djangorestframework": version("djangorestframework"),
        "gunicorn": version("gunicorn"),
        "wrk": wrk_banner.split()[1] if wrk_banner.startswith("wrk ") else "unknown",
    }


def ratio(results: list[Result], result: Result, baseline: str) -> float | None:
    """req/s of ``result`` over that of ``baseline`` in the same scenario (and depth)."""
    for other in results:
        if (other.scenario, other.depth, other.target) == (result.scenario, result.depth, baseline):
            return result.load.rps / other.load.rps if other.load.rps else None
    return None


def depth_ratio(results: list[Result], result: Result, percentile: str = "p50") -> float | None:
    """Latency of a deep page over that of the first page (depth 0), same scenario and target."""
    if result.depth is None:
        return None
    for other in results:
        if (other.scenario, other.target, other.depth) == (result.scenario, result.target, 0):
            first = other.load.latency_ms[percentile]
            return result.load.latency_ms[percentile] / first if first else None
    return None


def to_json(facts: Facts, results: list[Result]) -> str:
    """The whole run as JSON, with req/s and the ratios computed per row."""
    rows = [
        {
            **asdict(result),
            "rps": result.load.rps,
            "errors": result.load.error_count,
            "ratio_vs_naive": ratio(results, result, "naive"),
            "ratio_vs_floor": ratio(results, result, "floor"),
            "p50_vs_depth_0": depth_ratio(results, result, "p50"),
            "p99_vs_depth_0": depth_ratio(results, result, "p99"),
        }
        for result in results
    ]
    return json.dumps({"facts": asdict(facts), "results": rows}, indent=2) + "\n"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def depth_summary(results: list[Result]) -> str:
    """One line on deep pages: p50 latency at each depth over depth 0, per target."""
    parts = []
    for target in dict.fromkeys(r.target for r in results if r.depth):
        ratios = [
            f"{r.depth:,} rows {_times(depth_ratio(results, r))}"
            for r in results
            if r.target == target and r.depth
        ]
        parts.append(f"{target} {', '.join(ratios)}")
    if not parts:
        return ""
    return f"Deep pages, p50 latency relative to the first page (depth 0): {'; '.join(parts)}."


def table_lines(header: Sequence[str], text_columns: int) -> list[str]:
    """The first two lines of a Markdown table: ``header``, the first ``text_columns``
    left-aligned, the others (numbers) right-aligned."""
    aligns = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    return [f"| {' | '.join(header)} |", f"| {' | '.join(aligns)} |"]


def markdown_table(results: list[Result]) -> str:
    """The results as a Markdown table, ratios against naive and floor, then deep pages."""
    lines = [
        "| scenario | target | req/s | p50 ms | p99 ms | queries/request | DB CPU ms/request "
        "| bytes | errors | vs naive | vs floor |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        queries = "-" if r.probe.queries is None else str(r.probe.queries)
        db_cpu = "-" if r.db_cpu_ms is None else f"{r.db_cpu_ms:.2f}"
        lines.append(
            f"| {r.scenario} | {r.label} | {_rate(r.load.rps)} "
            f"| {r.load.latency_ms['p50']:.1f} | {r.load.latency_ms['p99']:.1f} "
            f"| {queries} | {db_cpu} | {r.probe.bytes:,} | {r.load.error_count:,} "
            f"| {_times(ratio(results, r, 'naive'))} | {_times(ratio(results, r, 'floor'))} |"
        )
    if summary := depth_summary(results):
        lines += ["", summary]
    return "\n".join(lines)


def markdown_block(facts: Facts, results: list[Result], chart: str, raw: str) -> str:
    """What goes between the markers: facts, command, table, chart, raw results."""
    f = facts
    deep = ""
    if f.depths:
        deep = (
            f", deep = the page of {LIST_PAGE_SIZE} products after "
            f"{', '.join(f'{depth:,}' for depth in f.depths)} rows (naive `?page=N`; api a "
            "cursor issued by the service's paginator, checked to start at that row)"
        )
    variants = "".join(
        f"\n- `{target}`: `GET /api/products/?page_size={LIST_PAGE_SIZE}` from a gunicorn of its "
        f"own started with {', '.join(f'`{k}={v}`' for k, v in SERVICE_VARIANTS[target].items())}"
        for target in dict.fromkeys(r.target for r in results)
        if target in SERVICE_VARIANTS
    )
    return f"""Measured {f.timestamp} at commit `{f.commit}`.

- Machine: {f.cores} cores ({f.cpu}), {f.memory_gib:.1f} GiB memory, {f.os}; \
load average {f.load_average:.2f} before the run
- Software: Python {f.python}, Django {f.django}, DRF {f.djangorestframework}, \
gunicorn {f.gunicorn} ({f.workers} sync workers), {f.database}, cache: {f.cache}
- Dataset: {f.products:,} products; list = `GET /<target>/products/?page_size=\
{LIST_PAGE_SIZE}`, detail = `GET /<target>/products/<id>/` round-robin over \
{f.detail_ids:,} sampled ids, stats = `GET /<target>/stats/categories/` (naive \
computes it per request, api serves it from the cache){deep}{variants}
- Load: wrk {f.wrk}, {f.threads} threads, {f.connections} connections, \
{f.duration_s} s per row after a {f.warmup_s} s warm-up, on the same machine
- Command: `{f.command}`

req/s counts 2xx responses only; queries/request and bytes come from one request \
outside the load; DB CPU ms/request: user + system CPU of the PostgreSQL backends holding \
the service's connections (`/proc/<pid>/stat`, 10 ms ticks) during the measured run, over \
its requests (a database on this machine only); errors are socket errors, timeouts and \
non-2xx responses.

{markdown_table(results)}

![requests per second by target]({chart})

Raw results: `{raw}`"""


def replace_block(text: str, block: str, start_marker: str = START, end_marker: str = END) -> str:
    """``text`` with the marked block replaced by ``block``; the rest stays as it was.

    Without markers the block is appended (after the intro when ``text`` is empty).
    """
    marked = f"{start_marker}\n{block.strip()}\n{end_marker}"
    start, end = text.find(start_marker), text.find(end_marker)
    if start == -1 or end < start:
        head = text.rstrip() or INTRO.rstrip()
        return f"{head}\n\n{marked}\n"
    return text[:start] + marked + text[end + len(end_marker) :]


def write_benchmarks(path: Path, block: str) -> None:
    """Write ``block`` into the marked block of the Markdown file at ``path``."""
    text = path.read_text() if path.exists() else ""
    path.write_text(replace_block(text, block))


def _group(result: Result) -> str:
    """The bar group of a result: its scenario, with the depth in the deep scenario."""
    return result.scenario if result.depth is None else f"{result.scenario} {result.depth:,}"


def write_chart(facts: Facts, results: list[Result], path: Path) -> None:
    """A bar chart of req/s per target, grouped by scenario, rendered with Agg."""
    scenarios = list(dict.fromkeys(_group(r) for r in results))
    targets = list(dict.fromkeys(r.target for r in results))
    rps = {(_group(r), r.target): r.load.rps for r in results}
    width = 0.8 / len(targets)

    fig = Figure(figsize=(11, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, target in enumerate(targets):
        offset = (i - (len(targets) - 1) / 2) * width
        xs = [n + offset for n in range(len(scenarios))]
        values = [rps.get((s, target)) for s in scenarios]
        bars = ax.bar(xs, [v or 0.0 for v in values], width, label=target)
        labels = ["" if v is None else _rate(v) for v in values]
        ax.bar_label(bars, labels=labels, fontsize=8)
    ax.set_xticks(range(len(scenarios)), scenarios, fontsize=8)
    ax.set_ylabel("requests/s (2xx)")
    ax.set_title(
        f"{facts.products:,} products, {facts.database}, {facts.workers} gunicorn workers, "
        f"{facts.connections} connections",
        fontsize=10,
    )
    ax.legend(title="target")
    ax.margins(y=0.12)
    fig.tight_layout()
    fig.savefig(path)
