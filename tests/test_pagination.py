"""KeysetPagination and the estimated-count paginators (drf_scale.pagination)."""

import datetime as dt
import re
import uuid
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.core.checks import Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from drf_scale.checks import check_keyset_indexes
from drf_scale.counting import CountResult, CountStrategy
from tests.pagingapp.models import Event, Item
from tests.pagingapp.views import ItemKeyset, ItemList

pytestmark = pytest.mark.urls("tests.pagingapp.urls")

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
TIMES = [T0, T0 + dt.timedelta(microseconds=1), T0 + dt.timedelta(days=1, microseconds=999_999)]
SCORES = [Decimal("1.00"), Decimal("1.50"), Decimal("20.25")]
NAMES = ["", "a", "ab", "b"]
FIELDS = ["score", "created", "rank", "name"]

factory = APIRequestFactory()

item_values = st.fixed_dictionaries(
    {
        "rank": st.none() | st.integers(0, 2),
        "score": st.sampled_from(SCORES),
        "created": st.sampled_from(TIMES),
        "name": st.sampled_from(NAMES),
    }
)
orderings = st.lists(
    st.sampled_from([*FIELDS, *(f"-{name}" for name in FIELDS)]),
    unique_by=lambda term: term.removeprefix("-"),
    max_size=3,
).map(tuple)
hypothesis_settings = settings(
    max_examples=40,
    deadline=None,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class FixedCount(CountStrategy):
    def __init__(self, value: int, estimated: bool) -> None:
        self.result = CountResult(value, estimated)

    def count(self, queryset):
        return self.result


def make_items(values: list[dict], category: int = 0) -> list[Item]:
    return Item.objects.bulk_create(Item(category=category, **v) for v in values)


def expected_order(items, ordering: tuple[str, ...]) -> list[int]:
    """Python's answer: NULLs last ascending, first descending; the primary key breaks ties."""
    names = [*ordering] or ["-created"]
    names.append("-id" if names[-1].startswith("-") else "id")
    rows = list(items)
    for name in reversed(names):  # stable sorts, least significant key first
        field = name.removeprefix("-")
        rows.sort(
            key=lambda row, f=field: (
                (True,) if getattr(row, f) is None else (False, getattr(row, f))
            ),
            reverse=name.startswith("-"),
        )
    return [row.id for row in rows]


def fetch(params: dict, view_class=ItemList, paginator_class=None):
    """One page through the view's paginator, without HTTP: (ids, next params, previous params)."""
    request = Request(factory.get("/items/", params))
    view = view_class(request=request, kwargs={}, format_kwarg=None)
    paginator = (paginator_class or view_class.pagination_class)()
    page = paginator.paginate_queryset(view.get_queryset(), request, view)

    def params_of(link):
        return dict(parse_qsl(urlsplit(link).query)) if link else None

    ids = [row.pk for row in page]
    return ids, params_of(paginator.get_next_link()), params_of(paginator.get_previous_link())


def walk_forward(params: dict, between=lambda: None) -> list[tuple]:
    """Every page from ``params`` on, following next links: [(ids, next, previous)]."""
    pages, seen = [], set()
    while params is not None:
        pages.append(fetch(params))
        ids, params = pages[-1][0], pages[-1][1]
        assert seen.isdisjoint(ids), "a row came twice"
        seen.update(ids)
        between()
    return pages


def ids_of(pages: list[tuple]) -> list[int]:
    return [pk for ids, _, _ in pages for pk in ids]


def ordering_params(ordering: tuple[str, ...], page_size: int) -> dict:
    params = {"page_size": str(page_size)}
    if ordering:
        params["ordering"] = ",".join(ordering)
    return params


@hypothesis_settings
@given(
    values=st.lists(item_values, max_size=25),
    ordering=orderings,
    page_size=st.integers(1, 6),
)
def test_pages_concatenate_to_the_full_ordering_both_ways(db, values, ordering, page_size):
    with transaction.atomic():
        items = make_items(values)
        expected = expected_order(items, ordering)
        params = ordering_params(ordering, page_size)

        pages = walk_forward(params)
        assert ids_of(pages) == expected
        assert pages[0][2] is None and pages[-1][1] is None

        # Back from the last page to the first, following previous links.
        seen, previous = pages[-1][0], pages[-1][2]
        while previous is not None:
            ids, _, previous = fetch(previous)
            seen = ids + seen
        assert seen == expected
        transaction.set_rollback(True)


@hypothesis_settings
@given(
    values=st.lists(item_values, min_size=1, max_size=20),
    ordering=orderings,
    page_size=st.integers(1, 4),
    data=st.data(),
)
def test_concurrent_writes_neither_repeat_nor_skip_rows(db, values, ordering, page_size, data):
    with transaction.atomic():
        initial = {item.id for item in make_items(values)}
        deleted: set[int] = set()

        def write_between_pages():
            if len(deleted) + Item.objects.count() > 60:  # keep the walk finite
                return
            inserts = data.draw(st.lists(item_values, max_size=3), label="inserts")
            make_items(inserts)
            existing = sorted(Item.objects.values_list("id", flat=True))
            if existing:
                doomed = data.draw(st.lists(st.sampled_from(existing), max_size=2), label="deletes")
                Item.objects.filter(id__in=doomed).delete()
                deleted.update(doomed)

        pages = walk_forward(ordering_params(ordering, page_size), between=write_between_pages)
        seen = ids_of(pages)

        assert initial - deleted <= set(seen), "a row that existed throughout was skipped"
        # What was returned is in order: rows never change, so sort the survivors' values.
        by_id = {row.id: row for row in Item.objects.filter(id__in=seen)}
        returned = [i for i in seen if i in by_id]
        assert returned == expected_order([by_id[i] for i in returned], ordering)
        transaction.set_rollback(True)


def test_uuid_keys_nullable_datetimes_and_decimals_round_trip(db, client):
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    events = Event.objects.bulk_create(
        Event(at=None if i % 4 == 0 else base + dt.timedelta(microseconds=i % 3), amount=amount)
        for i, amount in enumerate([Decimal("0.0001"), Decimal("0.0002"), Decimal("-1.5")] * 4)
    )
    for ordering in ("at", "-at", "amount", "-amount,at"):
        url, seen = f"/events/?ordering={ordering}&page_size=1", []
        while url:
            body = client.get(url).json()
            seen += [uuid.UUID(row["id"]) for row in body["results"]]
            url = body["next"]
        assert sorted(seen) == sorted(e.id for e in events), ordering
        assert len(seen) == len(events)


def test_defaults_are_drfs_page_size_and_no_page_size_parameter(db, client, settings):
    Event.objects.bulk_create(Event(amount=Decimal(i)) for i in range(30))
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "PAGE_SIZE": 5}
    assert len(client.get("/events-default/?page_size=50").json()["results"]) == 5
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "PAGE_SIZE": None}
    assert len(client.get("/events-default/").json()["results"]) == 20  # DEFAULT_PAGE_SIZE


def test_response_shape_and_count_on_request(db, client):
    make_items([{"rank": 1, "score": SCORES[0], "created": TIMES[0]}] * 7)
    body = client.get("/items/").json()
    assert list(body) == ["next", "previous", "results"]
    assert len(body["results"]) == 5 and body["previous"] is None

    body = client.get("/items/?count=true").json()
    assert body["count"] == 7 and body["count_is_estimate"] is False
    assert "count=true" in body["next"]

    second = client.get(body["next"]).json()
    assert len(second["results"]) == 2 and second["next"] is None
    back = client.get(second["previous"]).json()
    assert back["results"] == body["results"] and back["previous"] is None


def test_count_strategy_reports_estimates(db, monkeypatch):
    make_items([{"rank": 1, "score": SCORES[0], "created": TIMES[0]}] * 2)
    monkeypatch.setattr(ItemKeyset, "count_strategy", FixedCount(5000, estimated=True))
    request = Request(factory.get("/items/", {"count": "1"}))
    view = ItemList(request=request, kwargs={}, format_kwarg=None)
    paginator = ItemKeyset()
    page = paginator.paginate_queryset(view.get_queryset(), request, view)
    body = paginator.get_paginated_response([row.pk for row in page]).data
    assert (body["count"], body["count_is_estimate"]) == (5000, True)


def test_no_offset_in_any_page_query(db, client):
    make_items([{"rank": None, "score": SCORES[1], "created": TIMES[1]}] * 12)
    with CaptureQueriesContext(connection) as queries:
        url = "/items/?ordering=rank,-name"
        while url:
            url = client.get(url).json()["next"]
    assert queries.captured_queries
    assert not any("OFFSET" in q["sql"].upper() for q in queries.captured_queries)


def test_deferred_ordering_columns_are_loaded_with_the_page(db):
    make_items([{"rank": 1, "score": SCORES[0], "created": TIMES[0]}] * 6)
    request = Request(factory.get("/items/", {"ordering": "score"}))
    for queryset in (Item.objects.only("id"), Item.objects.defer("score", "created")):
        paginator = ItemKeyset()
        with CaptureQueriesContext(connection) as queries:
            paginator.paginate_queryset(queryset, request, ItemList)
            paginator.get_next_link()
        assert len(queries) == 1


def test_values_querysets_page_by_their_dicts(db):
    make_items([{"rank": 1, "score": SCORES[0], "created": TIMES[0]}] * 6)
    request = Request(factory.get("/items/", {"ordering": "score"}))
    paginator = ItemKeyset()
    page = paginator.paginate_queryset(Item.objects.values("id", "score"), request, ItemList)
    assert len(page) == 5 and paginator.get_next_link()
    with pytest.raises(ImproperlyConfigured, match="ordering columns"):
        ItemKeyset().paginate_queryset(Item.objects.values("id"), request, ItemList)


@pytest.mark.django_db(transaction=True)
async def test_async_pagination_matches_sync():
    await Item.objects.abulk_create(
        Item(rank=i % 2 or None, score=SCORES[i % 3], created=TIMES[i % 3]) for i in range(13)
    )
    params = {"ordering": "-rank,score", "count": "true"}
    pages = []
    for run_async in (False, True):
        request = Request(factory.get("/items/", params))
        paginator = ItemKeyset()
        if run_async:
            page = await paginator.apaginate_queryset(Item.objects.all(), request, ItemList)
        else:
            page = await sync_paginate(paginator, request)
        pages.append(([row.pk for row in page], paginator.counted, paginator.get_next_link()))
    assert pages[0] == pages[1]
    assert pages[1][1] == CountResult(13, estimated=False)
    await sync_to_async(connections.close_all)()  # the ORM's worker thread holds one


async def sync_paginate(paginator, request):
    return await sync_to_async(
        lambda: list(paginator.paginate_queryset(Item.objects.all(), request, ItemList))
    )()


# Every client error is a 400 naming its parameter.


def _cursor_for(client, url: str) -> str:
    return dict(parse_qsl(urlsplit(client.get(url).json()["next"]).query))["cursor"]


@pytest.fixture
def items(db):
    make_items([{"rank": i, "score": SCORES[0], "created": TIMES[0]} for i in range(8)])
    make_items([{"rank": 1, "score": SCORES[1], "created": TIMES[1]}] * 8, category=1)


def assert_400(client, url: str, param: str, fragment: str) -> None:
    response = client.get(url)
    assert response.status_code == 400, (url, response.content)
    messages = response.json()[param]
    assert any(fragment in message for message in messages), messages


def test_bad_cursors_are_400s(client, items):
    Event.objects.bulk_create([Event(amount=1), Event(amount=2)])
    cursor = _cursor_for(client, "/items/")
    payload, signature = cursor.rsplit(".", 1)
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature
    invalid = "not issued by this endpoint"
    for bad in (
        tampered,
        cursor[:-5],  # truncated
        cursor[: len(cursor) // 2],
        "",
        "cD0yMDI0LTA1LTAx",  # DRF CursorPagination's
        "%FF%00%E2%80%AE",
        _cursor_for(client, "/events/?page_size=1"),  # another endpoint's
    ):
        assert_400(client, f"/items/?cursor={bad}", "cursor", invalid)


def test_stale_format_cursor_is_a_400(client, items):
    signer = ItemKeyset().get_signer()
    for payload in ({"v": 0, "o": ["-created", "-id"], "p": [1, 2]}, ["old"], {"v": 1, "p": 3}):
        token = signer.sign_object(payload)
        assert_400(client, f"/items/?cursor={token}", "cursor", "outdated format")
    ordering = ["-created", "-id"]
    good = {"v": 1, "o": ordering, "f": None, "p": ["not a date", 1], "r": False}
    request = Request(factory.get("/items/"))
    good["f"] = ItemKeyset().get_cursor_binding(request, Item)
    assert_400(client, f"/items/?cursor={signer.sign_object(good)}", "cursor", "outdated format")


def test_cursor_is_bound_to_its_filters_and_ordering(client, items):
    cursor = _cursor_for(client, "/items/?category=1&ordering=score")
    assert client.get(f"/items/?category=1&ordering=score&cursor={cursor}").status_code == 200
    # Page size and count may change between pages; filters and ordering may not.
    ok = f"/items/?category=1&ordering=score&page_size=2&count=true&cursor={cursor}"
    assert client.get(ok).status_code == 200
    for filters in ("category=0&", "", "category=1&name=x&"):
        url = f"/items/?{filters}ordering=score&cursor={cursor}"
        assert_400(client, url, "cursor", "issued for other filters")
    assert_400(
        client, f"/items/?category=1&ordering=-score&cursor={cursor}", "cursor", "ordering score,id"
    )


@pytest.mark.parametrize(
    "size", ["0", "-1", "abc", "51", "1.5", "", "1_0", "٣", "99999999999999999999"]
)
def test_bad_page_sizes_are_400s(client, items, size):
    assert_400(client, f"/items/?page_size={size}", "page_size", "integer from 1 to 50")


@pytest.mark.parametrize(
    "ordering", ["unknown", "score,score", "score,-score", "--score", "score,", "id__gt"]
)
def test_bad_orderings_are_400s(client, items, ordering):
    assert_400(client, f"/items/?ordering={ordering}", "ordering", "score, created, rank, name")


def test_bad_count_is_a_400(client, items):
    assert_400(client, "/items/?count=maybe", "count", "'true' or 'false'")


# EstimatedCountPageNumberPagination and EstimatedCountLimitOffsetPagination.


def test_page_numbers_with_count_strategy(client, items):
    body = client.get("/item-pages/?page=2").json()
    assert (body["count"], body["count_is_estimate"]) == (16, False)
    assert len(body["results"]) == 5
    assert "page=3" in body["next"] and body["previous"].endswith("/item-pages/")
    last = client.get("/item-pages/?page=last").json()
    assert len(last["results"]) == 1 and last["next"] is None
    assert client.get("/item-pages/?page=5").status_code == 404


def test_page_numbers_past_an_estimate_follow_the_rows(client, items, monkeypatch):
    from tests.pagingapp.views import ItemPages

    monkeypatch.setattr(ItemPages, "count_strategy", FixedCount(6, estimated=True))
    body = client.get("/item-pages/?page=2").json()
    assert body["count_is_estimate"] is True
    assert len(body["results"]) == 5 and body["next"]  # 16 rows: the estimate is not a limit
    assert len(client.get("/item-pages/?page=4").json()["results"]) == 1


def test_page_number_errors(client, items):
    assert_400(client, "/item-pages/?page=0", "page", "positive integer")
    assert_400(client, "/item-pages/?page=abc", "page", "positive integer")
    assert_400(client, "/item-pages/?page_size=0", "page_size", "integer from 1 to 50")
    assert_400(client, "/item-pages/?page=22", "page", "with a cursor")  # offset 105 > 100
    assert client.get("/item-pages/?page=21").status_code == 404  # offset 100: served, empty


def test_limit_offset_with_count_strategy(client, items):
    body = client.get("/item-offsets/?limit=4&offset=12").json()
    assert (body["count"], body["count_is_estimate"], len(body["results"])) == (16, False, 4)
    assert body["next"] is None and "offset=8" in body["previous"]
    assert "offset=5" in client.get("/item-offsets/").json()["next"]
    assert client.get("/item-offsets/?offset=100").json()["results"] == []


def test_limit_offset_errors(client, items):
    assert_400(client, "/item-offsets/?offset=101", "offset", "with a cursor")
    assert_400(client, "/item-offsets/?offset=-1", "offset", "integer of at least 0")
    assert_400(client, "/item-offsets/?offset=x", "offset", "integer of at least 0")
    assert_400(client, "/item-offsets/?limit=0", "limit", "integer from 1 to 50")
    assert_400(client, "/item-offsets/?limit=51", "limit", "integer from 1 to 50")


# The W010 system check.


def test_check_warns_about_orderings_no_index_serves(db):
    with override_settings(ROOT_URLCONF="tests.pagingapp.check_urls"):
        messages = {(m.id, m.obj.__name__): m for m in check_keyset_indexes()}
    assert sorted(messages) == [
        ("drf_scale.E010", "BrokenOrderingList"),
        ("drf_scale.W010", "EventList"),
        ("drf_scale.W010", "ItemList"),
    ]
    items = messages["drf_scale.W010", "ItemList"]
    assert isinstance(items, Warning) and "pagingapp.Item by (name, id)" in items.msg
    assert "models.Index(fields=['name', 'id'], name=...)" in items.hint
    assert "by (amount, id)" in messages["drf_scale.W010", "EventList"].msg
    broken = messages["drf_scale.E010", "BrokenOrderingList"]
    assert isinstance(broken, Error) and "no concrete field 'popularity'" in broken.msg


# PostgreSQL: the row comparison, and the index that serves it.


def explain_page(params: dict) -> tuple[str, str]:
    """The SQL and EXPLAIN of the second page's query, sequential scans disabled.

    The test table is small, so the planner would rightly prefer a sequential
    scan; enable_seqscan=off (local to the test's transaction) asks which index
    it would use on a large table.
    """
    following = fetch(params)[1]
    request = Request(factory.get("/items/", following))
    view = ItemList(request=request, kwargs={}, format_kwarg=None)
    queryset = ItemKeyset().get_page_queryset(view.get_queryset(), request, view)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    return str(queryset.query), queryset.explain()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("params", "row", "index"),
    [
        ({"ordering": "score"}, True, "Index Scan using item_score_id"),
        ({}, True, "Index Scan Backward using item_created_id"),
        ({"ordering": "-score"}, True, "Index Scan Backward using item_score_id"),
        ({"category": "1"}, True, "Index Scan Backward using item_category_created_id"),
        ({"ordering": "score,-created"}, False, "Index Scan using item_score_created_desc"),
        ({"ordering": "rank"}, False, "Index Scan using item_rank_id"),
    ],
)
def test_postgres_pages_by_an_index_scan(items, params, row, index):
    sql, plan = explain_page({**params, "page_size": "3"})
    row_comparison = re.search(r'\("pagingapp_item"\."\w+", "pagingapp_item"\."id"\) [<>] \(', sql)
    assert bool(row_comparison) is row, sql
    assert index in plan, plan
    assert "Sort" not in plan, plan


def test_a_foreign_key_in_a_keyset_ordering_orders_by_its_key_column(db):
    """Device.maker's Maker sorts by name, unlike its ids: the cursor holds maker_id, so the
    pages follow (maker_id, id) and concatenate to every row once."""
    from drf_scale.pagination import KeysetPagination
    from tests.testapp.models import Device
    from tests.zoo.data import make_zoo

    make_zoo(9)

    class ByMaker(KeysetPagination):
        page_size = 4
        ordering = ("maker",)

    rows, params = [], {}
    while True:
        paginator = ByMaker()
        request = Request(factory.get("/devices/", params))
        rows += paginator.paginate_queryset(Device.objects.all(), request, None)
        link = paginator.get_next_link()
        if link is None:
            break
        params = dict(parse_qsl(urlsplit(link).query))
    expected = list(Device.objects.order_by("maker_id", "id"))
    assert rows == expected
    assert expected != list(Device.objects.order_by("maker", "id"))  # names sort otherwise
