"""``manage.py scale_audit``: call every DRF list and retrieve route and judge its queries.

List routes run at three page sizes or more (``--sizes``, through the paginator's page size
parameter, fitted to the rows the view has); retrieve routes run on the first row of the view's
queryset. A query (by fingerprint) is an N+1 when its count grows with the rows each page
actually returned; one present a constant number of times, or only once the page holds a row
that needs it (0 -> 1 -> 1), is a fixed cost, reported but not a finding. Each route gets a
verdict: ok, N+1 (with the fingerprint, the serializer field path, and the serializer method
that ran it, a ``to_representation`` override say), over budget, plan incomplete (fields the
planner cannot see), slow path (a FastReadMixin view whose serializer falls back to DRF, with
every reason), partly compiled (some of its fields render from instances, each with its
reason), an HTTP error, or no data. ``--json`` prints a JSON list; the command exits 1
when any route has a finding, so CI can gate on it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import Client, RequestFactory, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin, RetrieveModelMixin

from drf_scale.conf import scale_settings
from drf_scale.fast import compile_read_plan
from drf_scale.middleware import view_query_budget
from drf_scale.mixins import FastReadMixin, OptimizedQuerysetMixin
from drf_scale.planner import plan_for
from drf_scale.queries import QueryGroup, QueryLog, capture_queries

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager

__all__ = ["Command"]

AUDITED_ACTIONS = ("list", "retrieve")


@dataclass(frozen=True)
class Route:
    """A named URL pattern served by a DRF list or retrieve action."""

    name: str
    path: str  # the pattern text, e.g. "/api/products/(?P<pk>[^/.]+)/"
    callback: Callable[..., Any]
    action: str
    url_kwargs: frozenset[str]


def _pattern_kwargs(pattern: Any) -> frozenset[str]:
    converters = getattr(pattern, "converters", None) or pattern.regex.groupindex
    return frozenset(converters)


def _action_of(callback: Callable[..., Any]) -> str | None:
    view_class = getattr(callback, "cls", None)
    if not (isinstance(view_class, type) and issubclass(view_class, GenericAPIView)):
        return None
    actions = getattr(callback, "actions", None)
    if actions is not None:
        action = actions.get("get")
    elif issubclass(view_class, ListModelMixin):
        action = "list"
    else:
        action = "retrieve" if issubclass(view_class, RetrieveModelMixin) else None
    return action if action in AUDITED_ACTIONS else None


def discover_routes(
    patterns: Iterable[URLPattern | URLResolver],
    namespace: str = "",
    path: str = "/",
    url_kwargs: frozenset[str] = frozenset(),
) -> Iterator[Route]:
    """Every named list and retrieve route under ``patterns``, without format suffixes."""
    for entry in patterns:
        entry_path = path + str(entry.pattern).removeprefix("^").removesuffix("$")
        entry_kwargs = url_kwargs | _pattern_kwargs(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from discover_routes(entry.url_patterns, inner, entry_path, entry_kwargs)
            continue
        action = _action_of(entry.callback)
        if action and entry.name and "format" not in entry_kwargs:
            yield Route(namespace + entry.name, entry_path, entry.callback, action, entry_kwargs)


@dataclass
class Finding:
    # "N+1", "fixed cost", "over budget", "plan incomplete", "slow path", "partly compiled"
    # or "error"
    verdict: str
    detail: str
    field_paths: list[str] = field(default_factory=list)
    call_sites: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)  # serializer methods that ran the query
    reasons: list[str] = field(default_factory=list)  # why a plan falls back, every one


def _query_finding(verdict: str, counts: str, group: QueryGroup) -> Finding:
    return Finding(
        verdict,
        f"{counts} x {group.fingerprint}",
        group.field_paths,
        group.call_sites,
        group.methods,
    )


def grows_with_rows(counts: list[int]) -> bool:
    """Whether a query's counts, at pages of increasing row counts, grow with the rows.

    Pages of one ordering are prefixes of each other, so a query run per row (or per row with
    a relation) never runs less often on a larger page. It grows when its count never falls,
    rises at two steps or more, or, over fewer points, rises by two or more at the last: a
    query at most once per request (0 -> 1 -> 1, 0 -> 0 -> 1) is a fixed cost.
    """
    steps = list(itertools.pairwise(counts))
    if not steps or any(later < earlier for earlier, later in steps):
        return False
    rises = sum(later > earlier for earlier, later in steps)
    return rises >= 2 or counts[-1] - counts[-2] >= 2


def _rows(data: Any) -> int | None:
    """The rows a list response holds: a list, or the list of a paginated envelope."""
    if isinstance(data, list):
        return len(data)
    if isinstance(data, dict):
        lists = [value for value in data.values() if isinstance(value, list)]
        results = data.get("results")
        if isinstance(results, list):
            return len(results)
        if len(lists) == 1:
            return len(lists[0])
    return None


def fit_sizes(sizes: Iterable[int], rows: int) -> list[int]:
    """``sizes`` capped at the ``rows`` there are, completed to three where the rows allow."""
    fitted = {min(size, rows) for size in sizes if size > 0}
    spare = [size for size in range(1, rows + 1) if size not in fitted]
    while len(fitted) < 3 and spare:
        fitted.add(spare.pop(len(spare) // 2))
    return sorted(fitted)


@dataclass
class RouteReport:
    route: str
    name: str
    view: str
    action: str
    sizes: list[int]
    rows: list[int]  # the rows each list page returned
    queries: list[int]
    budget: int
    findings: list[Finding] = field(default_factory=list)
    fixed_costs: list[Finding] = field(default_factory=list)  # noted, not findings
    status: str | None = None  # "no data" or "skipped: ..." when the route was not judged

    @property
    def verdict(self) -> str:
        if self.findings:
            return ", ".join(dict.fromkeys(finding.verdict for finding in self.findings))
        return self.status or "ok"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


class Auditor:
    """Calls routes with a test client and judges the queries each one ran."""

    def __init__(self, client: Client, sizes: tuple[int, ...], user: Any) -> None:
        self.client = client
        self.sizes = sizes
        self.user = user

    def view_for(self, route: Route) -> GenericAPIView:
        """The view instance a request to ``route`` would get, for its queryset and classes."""
        callback = route.callback
        # as_view() sets cls on the view function it returns: _action_of checked it.
        view_class: type[GenericAPIView] = callback.cls  # type: ignore[attr-defined]
        view = view_class(**getattr(callback, "initkwargs", {}))
        # action_map and action: ViewSetMixin's, set on any view as a viewset's as_view() does.
        view.action_map = getattr(callback, "actions", {})  # type: ignore[attr-defined]
        view.args, view.kwargs, view.format_kwarg = (), {}, None
        view.request = view.initialize_request(RequestFactory().get(route.path))
        view.request.user = self.user or AnonymousUser()
        view.action = route.action  # type: ignore[attr-defined]
        return view

    def audit(self, route: Route) -> RouteReport:
        view = self.view_for(route)
        lookup = view.lookup_url_kwarg or view.lookup_field
        report = RouteReport(
            route=route.path,
            name=route.name,
            view=f"{type(view).__module__}.{type(view).__qualname__}",
            action=route.action,
            sizes=[],
            rows=[],
            queries=[],
            # A view unchecked per request (budget None) is still judged by the default.
            budget=view_query_budget(route.callback) or scale_settings.QUERY_BUDGET,
        )
        expected_kwargs = {lookup} if route.action == "retrieve" else set()
        if route.url_kwargs != expected_kwargs:
            report.status = f"skipped: needs URL arguments {sorted(route.url_kwargs)}"
            return report
        first = view.get_queryset().first()
        if first is None:
            report.status = "no data"
            return report
        kwargs = {lookup: getattr(first, view.lookup_field)} if route.action == "retrieve" else {}
        report.route = reverse(route.name, kwargs=kwargs)
        logs = self.call(report, view)
        if logs:
            self.judge(report, logs)
        if isinstance(view, OptimizedQuerysetMixin):
            # mypy#11470: classes are Hashable, as functools.cache requires
            unplanned = list(plan_for(view.get_serializer_class()).unplanned)  # type: ignore[arg-type]
            if unplanned:
                report.findings.append(
                    Finding("plan incomplete", "fields the planner cannot see", unplanned)
                )
        if isinstance(view, FastReadMixin):
            # mypy#11470: classes are Hashable, as functools.cache requires
            serializer_class = view.get_serializer_class()
            plan = compile_read_plan(serializer_class)  # type: ignore[arg-type]
            if plan.fallback_reasons:
                reasons = list(plan.fallback_reasons)
                verdict = "slow path" if not plan.compiled else "partly compiled"
                report.findings.append(Finding(verdict, plan.describe(), reasons=reasons))
        return report

    def call(self, report: RouteReport, view: GenericAPIView) -> list[QueryLog]:
        """Request the route at each page size; an HTTP error is a finding."""
        paginator = view.paginator
        size_param: str | None = getattr(paginator, "page_size_query_param", None) or getattr(
            paginator, "limit_query_param", None
        )
        sizes: list[int | None] = [None]
        if report.action == "list" and size_param is not None:
            sizes = list(fit_sizes(self.sizes, view.get_queryset().count()))
        logs = []
        for size in sizes:
            # sizes is [None] without a size parameter
            query = {size_param: size} if size is not None and size_param is not None else {}
            with capture_queries() as log:
                response = self.client.get(report.route, query, HTTP_ACCEPT="application/json")
            if response.status_code != 200:
                report.findings.append(Finding("error", f"HTTP {response.status_code}"))
                return []
            if size is not None:
                report.sizes.append(size)
                rows = _rows(_json(response))
                report.rows.append(size if rows is None else rows)
            report.queries.append(log.count)
            logs.append(log)
        return logs

    def judge(self, report: RouteReport, logs: list[QueryLog]) -> None:
        """N+1s: queries that grow with the rows; fixed costs: the ones that change or repeat
        and do not; over budget: the largest page's count."""
        threshold = scale_settings.NPLUSONE_THRESHOLD
        # One log per distinct row count: pages of equal rows ran the same queries.
        by_rows = dict(zip(report.rows, logs, strict=True)) if report.rows else {}
        if len(by_rows) > 1:
            points = [by_rows[rows] for rows in sorted(by_rows)]
            counts = [log.fingerprint_counts() for log in points]
            for group in points[-1].by_fingerprint():
                series = [count[group.fingerprint] for count in counts]
                label = " -> ".join(map(str, series))
                if grows_with_rows(series):
                    report.findings.append(_query_finding("N+1", label, group))
                elif len(set(series)) > 1 or group.count >= threshold:
                    report.fixed_costs.append(_query_finding("fixed cost", label, group))
        else:  # one page or one object: a query repeated from one place runs per nested row
            for group in logs[-1].repeated(threshold):
                report.findings.append(_query_finding("N+1", str(group.count), group))
        if logs[-1].count > report.budget:
            report.findings.append(
                Finding("over budget", f"{logs[-1].count} queries, budget {report.budget}")
            )


def _json(response: Any) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _finding_lines(finding: Finding) -> list[str]:
    lines = [f"    {finding.verdict}: {finding.detail}"]
    lines += [f"      rendering {path}" for path in finding.field_paths]
    lines += [f"      queried by {method}" for method in finding.methods]
    lines += [f"      at {site}" for site in finding.call_sites]
    lines += [f"      because {reason}" for reason in finding.reasons]
    return lines


def _table(reports: list[RouteReport]) -> str:
    """One row per route, its findings and fixed costs indented below it."""
    rows = [("route", "action", "rows", "queries", "budget", "verdict")]
    rows += [
        (
            r.route,
            r.action,
            " / ".join(map(str, r.rows)) or "-",
            " / ".join(map(str, r.queries)) or "-",
            str(r.budget),
            r.verdict,
        )
        for r in reports
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for index, row in enumerate(rows):
        padded = [cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
        lines.append("  ".join([*padded, row[5]]))
        report = reports[index - 1] if index else None
        for finding in [*report.findings, *report.fixed_costs] if report else ():
            lines += _finding_lines(finding)
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Call every DRF list and retrieve route; report N+1s, budget overruns, gaps in plans."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prefix", default="/", help="Audit only routes under this path.")
        parser.add_argument("--user", help="Username to log in as, for authenticated routes.")
        parser.add_argument(
            "--sizes",
            nargs="+",
            type=int,
            default=[1, 5, 20],
            metavar="SIZE",
            help="The page sizes list routes are called at, three or more, capped at the rows "
            "a view has (default: 1 5 20).",
        )
        parser.add_argument("--json", action="store_true", help="Print a JSON list.")

    def handle(self, *args: Any, **options: Any) -> None:
        if len(set(options["sizes"])) < 3 or min(options["sizes"]) < 1:
            raise CommandError("--sizes needs three different page sizes or more, from 1")
        user = None
        if options["user"]:
            # The user model's default manager has get_by_natural_key, as ModelBackend needs
            # (django-stubs type it as a plain Manager).
            users = cast("BaseUserManager[AbstractBaseUser]", get_user_model()._default_manager)
            try:
                user = users.get_by_natural_key(options["user"])
            except users.model.DoesNotExist as exc:
                raise CommandError(f"No user {options['user']!r}") from exc
        client = Client()
        if user is not None:
            client.force_login(user)
        auditor = Auditor(client, tuple(options["sizes"]), user)
        routes = [
            route
            for route in discover_routes(get_resolver().url_patterns)
            if route.path.startswith(options["prefix"])
        ]
        quiet = {**getattr(settings, "DRF_SCALE", {}), "QUERY_CHECKS": "off"}
        hosts = [*settings.ALLOWED_HOSTS, "testserver"]
        with override_settings(DRF_SCALE=quiet, ALLOWED_HOSTS=hosts):
            reports = [auditor.audit(route) for route in routes]
        if user is not None:
            client.logout()
        if options["json"]:
            self.stdout.write(json.dumps([report.as_json() for report in reports], indent=2))
        else:
            self.stdout.write(_table(reports))
        failing = [report for report in reports if report.findings]
        if failing:
            raise CommandError(f"{len(failing)} of {len(reports)} routes have findings")
