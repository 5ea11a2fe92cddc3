"""``manage.py scale_audit``: call every DRF list and retrieve route and judge its queries.

List routes run at two page sizes (``--sizes``, through the paginator's page size parameter);
retrieve routes run on the first row of the view's queryset. Each route gets a verdict:
ok, N+1 (with the fingerprint and the serializer field path), over budget, plan incomplete
(fields the planner cannot see), slow path (a FastReadMixin view whose serializer falls back
to DRF), an HTTP error, or no data. ``--json`` prints a JSON list;
the command exits 1 when any route has a finding, so CI can gate on it.
"""

from __future__ import annotations

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
from drf_scale.queries import QueryGroup, QueryLog, capture_queries, growth

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
    verdict: str  # "N+1", "over budget", "plan incomplete", "slow path" or "error"
    detail: str
    field_paths: list[str] = field(default_factory=list)
    call_sites: list[str] = field(default_factory=list)


def _nplusone(count: str, group: QueryGroup) -> Finding:
    return Finding("N+1", f"{count} x {group.fingerprint}", group.field_paths, group.call_sites)


@dataclass
class RouteReport:
    route: str
    name: str
    view: str
    action: str
    sizes: list[int]
    queries: list[int]
    budget: int
    findings: list[Finding] = field(default_factory=list)
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

    def __init__(self, client: Client, sizes: tuple[int, int], user: Any) -> None:
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
            report.findings += self.judge(logs, report.budget)
        if isinstance(view, OptimizedQuerysetMixin):
            # mypy#11470: classes are Hashable, as functools.cache requires
            unplanned = list(plan_for(view.get_serializer_class()).unplanned)  # type: ignore[arg-type]
            if unplanned:
                report.findings.append(
                    Finding("plan incomplete", "fields the planner cannot see", unplanned)
                )
        if isinstance(view, FastReadMixin):
            # mypy#11470: classes are Hashable, as functools.cache requires
            fallback = list(compile_read_plan(view.get_serializer_class()).fallback_reasons)  # type: ignore[arg-type]
            if fallback:
                report.findings.append(
                    Finding("slow path", "renders through DRF, not its compiled plan", fallback)
                )
        return report

    def call(self, report: RouteReport, view: GenericAPIView) -> list[QueryLog]:
        """Request the route at each page size; an HTTP error is a finding."""
        paginator = view.paginator
        size_param: str | None = getattr(paginator, "page_size_query_param", None) or getattr(
            paginator, "limit_query_param", None
        )
        sizes: list[int | None] = list(self.sizes)
        if report.action == "retrieve" or size_param is None:
            sizes = [None]
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
            report.queries.append(log.count)
            logs.append(log)
        return logs

    def judge(self, logs: list[QueryLog], budget: int) -> list[Finding]:
        findings = []
        grown = growth(logs[0], logs[-1]) if len(logs) > 1 else []
        for earlier, group in grown:
            findings.append(_nplusone(f"{earlier} -> {group.count}", group))
        seen = {group.fingerprint for _, group in grown}
        for group in logs[-1].repeated(scale_settings.NPLUSONE_THRESHOLD):
            if group.fingerprint not in seen:
                findings.append(_nplusone(str(group.count), group))
        if logs[-1].count > budget:
            findings.append(Finding("over budget", f"{logs[-1].count} queries, budget {budget}"))
        return findings


def _table(reports: list[RouteReport]) -> str:
    """One row per route, its findings indented below it."""
    rows = [("route", "action", "queries", "budget", "verdict")]
    rows += [
        (r.route, r.action, " / ".join(map(str, r.queries)) or "-", str(r.budget), r.verdict)
        for r in reports
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        padded = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        lines.append("  ".join([*padded, row[4]]))
        for finding in reports[index - 1].findings if index else ():
            lines.append(f"    {finding.verdict}: {finding.detail}")
            lines += [f"      rendering {path}" for path in finding.field_paths]
            lines += [f"      at {site}" for site in finding.call_sites]
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Call every DRF list and retrieve route; report N+1s, budget overruns, gaps in plans."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prefix", default="/", help="Audit only routes under this path.")
        parser.add_argument("--user", help="Username to log in as, for authenticated routes.")
        parser.add_argument(
            "--sizes",
            nargs=2,
            type=int,
            default=[1, 20],
            metavar=("SMALL", "LARGE"),
            help="The two page sizes list routes are called at (default: 1 20).",
        )
        parser.add_argument("--json", action="store_true", help="Print a JSON list.")

    def handle(self, *args: Any, **options: Any) -> None:
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
