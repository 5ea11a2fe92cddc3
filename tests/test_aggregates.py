"""Aggregates precomputed on Celery and served from the cache.

The first tests run on the embedded default, tasks in-process. The tests marked
postgres start the processes of example/Procfile (a Celery worker, beat, the web
server) on the PostgreSQL test database, with Redis as cache and as broker.
"""

import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.db import connection, connections, transaction
from kombu.exceptions import OperationalError
from rest_framework.exceptions import ValidationError
from rest_framework.test import APIRequestFactory

from drf_scale import aggregates
from drf_scale.aggregates import (
    TASK_NAME,
    Aggregate,
    AggregateEntry,
    AggregateView,
    aggregate,
    beat_schedule,
    refresh_aggregate,
)
from drf_scale.queries import record_queries
from example.celery import app
from shop import aggregates as shop_aggregates
from shop import stats
from tests import processes, services
from tests.aggregates_helpers import probes
from tests.aggregates_helpers.probes import probe
from tests.factories import make_catalog
from tests.processes import ManagedProcess

ROOT = Path(__file__).resolve().parent.parent
BROKER_URL = os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/1")
PARAMS = {"scale": 1}  # the probe's default, hot parameter set
probe_view = AggregateView.as_view(aggregate=probe)


def configure_celery(**conf: Any) -> dict[str, Any]:
    """Update this process's Celery config and drop its connections; return what it replaced."""
    replaced = {name: app.conf[name] for name in conf}
    app.conf.update(conf)
    app._after_fork()  # Celery's reset of its connection and producer pools
    return replaced


@pytest.fixture(autouse=True)
def embedded_default():
    """An empty cache, and tasks in-process (the worker fixture points them at a broker)."""
    cache.clear()
    replaced = configure_celery(task_always_eager=True)
    yield
    configure_celery(**replaced)
    cache.clear()


def get_probe() -> Any:
    return probe_view(APIRequestFactory().get("/probe/"))


def aged(value: Any, seconds: float = 1000) -> AggregateEntry:
    return AggregateEntry(value, time.time() - seconds)


def concurrently(func: Callable[[], Any], n: int) -> list[Any]:
    """Call ``func`` from ``n`` threads at once; each closes its database connections."""
    barrier = threading.Barrier(n)

    def call() -> Any:
        barrier.wait()
        try:
            return func()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(n) as pool:
        return [future.result() for future in [pool.submit(call) for _ in range(n)]]


class Broker:
    """Stands in for the refresh task: records the refreshes sent, then fails or passes them on."""

    def __init__(self, error: Exception | None = None, task: Any = None) -> None:
        self.error, self.task = error, task
        self.sent: list[tuple[tuple, int]] = []

    def apply_async(self, args: tuple, countdown: int = 0) -> Any:
        self.sent.append((args, countdown))
        if self.error is not None:
            raise self.error
        return self.task and self.task.apply_async(args, countdown=countdown)


@pytest.fixture
def broker(monkeypatch) -> Broker:
    """Records the refreshes this process sends; they go nowhere."""
    broker = Broker()
    monkeypatch.setattr(aggregates, "refresh_aggregate", broker)
    return broker


# Celery workers start and compute slowly on a loaded machine: a generous bound.
wait_until = functools.partial(processes.wait_until, timeout=20)


# The registry, the schedule and the parameters.


def test_beat_schedule_refreshes_each_hot_parameter_set_on_its_interval():
    schedule = beat_schedule()
    intervals = {name: entry["schedule"] for name, entry in schedule.items()}
    expected = {
        "category-sales": 60,
        "top-products?days=7": 60,
        "top-products?days=30": 60,
        "probe?scale=1": 1,
    }
    assert intervals.items() >= expected.items()
    assert schedule["top-products?days=30"] == {
        "task": TASK_NAME,
        "schedule": 60,
        "args": ("top-products", {"days": 30}),
        "options": {"expires": 60},
    }


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ({"days": "0"}, {"days": ["Must be an integer from 1 to 365."]}),
        ({"days": "366"}, {"days": ["Must be an integer from 1 to 365."]}),
        ({"days": "1.5"}, {"days": ["Must be an integer from 1 to 365."]}),
        ({"days": "week"}, {"days": ["Must be an integer from 1 to 365."]}),
        ({"days": ""}, {"days": ["Must be an integer from 1 to 365."]}),
    ],
)
def test_out_of_range_parameters_are_a_400(client, query, errors):
    response = client.get("/api/stats/top-products/", query)
    assert response.status_code == 400
    assert response.json() == errors


def test_parameters_are_validated_typed_and_canonical():
    top = shop_aggregates.top_products
    assert top.validate({"days": "007", "format": "json"}) == {"days": 7}
    assert top.validate({}) == {"days": 30}
    assert top.key(top.validate({"days": "07"})) == "drf_scale:agg:top-products:days=7"
    assert probe.validate({"scale": "10"}) == {"scale": 10}
    with pytest.raises(ValidationError) as error:
        probe.validate({"scale": "3"})
    assert error.value.detail == {"scale": ["Must be one of: 1, 10."]}
    no_default = Aggregate("t", lambda days: days, refresh_every=1, max_age=1, params={"days": [1]})
    with pytest.raises(ValidationError) as error:
        no_default.validate({})
    assert error.value.detail == {"days": ["This parameter is required."]}
    assert no_default.hot == []  # nothing to schedule without a default


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"refresh_every": 10, "max_age": 5}, "exceeds max_age"),
        ({"params": {}}, "params must declare exactly the arguments ['days']"),
        ({"params": {"days": (1,), "limit": (5,)}}, "params must declare exactly"),
        ({"hot": [{"days": 9}]}, "Must be one of: 1, 2."),
    ],
)
def test_bad_declarations_are_refused(options, message):
    declared = {"refresh_every": 1, "max_age": 5, "params": {"days": (1, 2)}} | options
    with pytest.raises((ValueError, ValidationError), match=message.replace("[", r"\[")):
        Aggregate("bad", lambda days=1: days, **declared)


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="'probe' is already registered"):
        aggregate("probe", refresh_every=1, max_age=1)(lambda: None)


# Serving, on the embedded default: tasks run in-process.


@pytest.mark.django_db
def test_a_miss_is_computed_once_then_served_from_the_cache():
    Group.objects.create(name="a")
    first = get_probe()
    assert first.status_code == 200
    assert first.data["results"] == {"groups": 1, "run": 1}
    assert (first.data["age"], first.data["stale"], first["Age"]) == (0, False, "0")
    computed_at = datetime.fromisoformat(first.data["computed_at"])
    assert first.data["computed_at"].endswith("Z")
    assert computed_at.timestamp() == pytest.approx(probe.read(PARAMS).computed_at, abs=0.001)
    with record_queries() as log:
        second = get_probe()
    assert second.data == first.data
    assert log.count == 0
    assert probes.runs() == 1


@pytest.mark.django_db
def test_a_stale_result_is_served_with_its_age_while_it_is_refreshed():
    probe.store(PARAMS, aged({"groups": -1}))
    response = get_probe()
    assert response.status_code == 200
    assert response.data["results"] == {"groups": -1}
    assert response.data["stale"] is True
    assert response.data["age"] == int(response["Age"]) >= 1000
    assert probe.read(PARAMS).value == {"groups": 0, "run": 1}  # the refresh ran in-process


@pytest.mark.django_db
def test_a_failing_refresh_retries_and_keeps_the_stored_result():
    cache.set(probes.FAIL, True)
    old = aged({"groups": -1})
    probe.store(PARAMS, old)
    response = get_probe()
    assert response.status_code == 200
    assert response.data["results"] == {"groups": -1}
    assert probe.read(PARAMS) == old
    assert probes.runs() == 6  # the run and its 5 retries, in-process


@pytest.mark.django_db
def test_an_unreachable_broker_still_serves_the_stale_result(broker, caplog):
    broker.error = OperationalError("connection refused")
    probe.store(PARAMS, aged({"groups": -1}))
    responses = [get_probe() for _ in range(3)]
    assert [(r.status_code, r.data["stale"]) for r in responses] == [(200, True)] * 3
    assert len(broker.sent) == 1  # the next try waits until max_age: no request pays for it again
    assert "Could not queue a refresh of aggregate probe" in caplog.text


@pytest.mark.django_db
def test_accept_mode_answers_a_miss_with_202_and_queues_it(settings, broker):
    settings.DRF_SCALE = {**settings.DRF_SCALE, "AGGREGATE_ON_MISS": "accept"}
    responses = [get_probe(), get_probe()]
    assert [(r.status_code, r["Retry-After"]) for r in responses] == [(202, "2")] * 2
    assert broker.sent == [(("probe", PARAMS), 0)]
    assert probes.runs() == 0


@pytest.mark.django_db
def test_accept_mode_in_process_answers_with_the_result_computed_meanwhile(settings):
    settings.DRF_SCALE = {**settings.DRF_SCALE, "AGGREGATE_ON_MISS": "accept"}
    response = get_probe()
    assert (response.status_code, response.data["results"]) == (200, {"groups": 0, "run": 1})


@pytest.mark.django_db(transaction=True)
def test_concurrent_misses_compute_once():
    cache.set(probes.DELAY, 0.5)
    responses = concurrently(get_probe, 6)
    assert [r.status_code for r in responses] == [200] * 6
    assert len({r.data["computed_at"] for r in responses}) == 1
    assert probes.runs() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_misses_give_up_waiting_with_202(settings):
    settings.DRF_SCALE = {**settings.DRF_SCALE, "AGGREGATE_MISS_WAIT": 0.1}
    cache.set(probes.DELAY, 1)
    responses = concurrently(get_probe, 4)
    assert sorted(r.status_code for r in responses) == [200, 202, 202, 202]
    assert {r["Retry-After"] for r in responses if r.status_code == 202} == {"2"}
    assert probes.runs() == 1


# Writes refresh the hot parameter sets after commit.


@pytest.mark.django_db
def test_writes_until_the_refresh_starts_join_it(broker, django_capture_on_commit_callbacks):
    for name in "abc":  # three transactions
        with django_capture_on_commit_callbacks(execute=True):
            Group.objects.create(name=name)
    assert broker.sent == [(("probe", PARAMS), 2)]  # in AGGREGATE_DEBOUNCE seconds
    probe.refresh(PARAMS)  # what the worker runs
    with django_capture_on_commit_callbacks(execute=True):
        Group.objects.create(name="d")
    assert broker.sent == [(("probe", PARAMS), 2)] * 2
    assert probe.read({"scale": 10}) is None  # only hot parameter sets are refreshed


@pytest.mark.django_db
def test_saves_m2m_changes_and_deletes_refresh_in_process(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        group = Group.objects.create(name="a")
    assert probe.read(PARAMS).value == {"groups": 1, "run": 1}
    with django_capture_on_commit_callbacks(execute=True):
        group.permissions.add(Permission.objects.first())
    assert probes.runs() == 2
    with django_capture_on_commit_callbacks(execute=True):
        group.delete()
    assert probe.read(PARAMS).value == {"groups": 0, "run": 3}


@pytest.mark.django_db
def test_a_rolled_back_write_refreshes_nothing(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks(execute=True)
    with capture, pytest.raises(RuntimeError), transaction.atomic():
        Group.objects.create(name="a")
        raise RuntimeError
    assert probes.runs() == 0


# The reference service.


def test_api_stats_serve_the_naive_results_precomputed(client, catalog):
    for path in ["stats/categories/", "stats/top-products/?days=7"]:
        body = client.get(f"/api/{path}").json()
        assert set(body) == {"computed_at", "age", "stale", "results"}
        assert body["results"] == client.get(f"/naive/{path}").json()
        assert body["results"]
    cached = client.get("/api/stats/categories/")
    assert cached.timing.queries == 0
    assert cached["Age"] == str(cached.json()["age"])


def test_an_order_refreshes_the_stats_at_commit(
    client, user_client, catalog, django_capture_on_commit_callbacks
):
    product = catalog["products"][5]
    assert client.get("/api/stats/top-products/?days=7").json()["results"][0]["units"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        order = {"lines": [{"product": product.id, "quantity": 3}]}
        assert user_client.post("/api/orders/", order, format="json").status_code == 201
    best = client.get("/api/stats/top-products/?days=7").json()["results"][0]
    assert (best["product"]["id"], best["units"]) == (product.id, 3)


# Real processes: example/Procfile's worker, beat and web on PostgreSQL and Redis.


def fresh(agg: Aggregate = probe, params: dict | None = None) -> AggregateEntry | None:
    """The stored result if it is fresh."""
    entry = agg.read(PARAMS if params is None else params)
    return entry if entry is not None and not agg.is_stale(entry) else None


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


PROCFILE = dict(
    line.split(": ", 1) for line in (ROOT / "example" / "Procfile").read_text().splitlines()
)


class Process(ManagedProcess):
    """A process of example/Procfile, started as a process manager would (from example/)."""

    def __init__(self, name: str, env: dict[str, str], log: Path, *args: str) -> None:
        self.name, self.env, self.log, self.args = name, env, log, args
        self.process: subprocess.Popen | None = None
        self.offset = 0

    def start(self, *extra: str) -> None:
        self.log.touch()
        self.offset = self.log.stat().st_size
        command = " ".join(["exec", PROCFILE[self.name], *self.args, *extra])
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", command],
                cwd=ROOT / "example",
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text()[self.offset :]

    def wait_for(self, text: str) -> None:
        """Wait until the output of this run shows ``text``; fail with it if the process exits."""

        def shown() -> bool:
            assert self.process.poll() is None, f"{self.name} exited:\n{self.output()}"
            return text in self.output()

        wait_until(shown, timeout=30, what=f"{text!r} from {self.name}")


@pytest.fixture(scope="module")
def process_env(django_db_setup) -> dict[str, str]:
    """Environment of the started processes: the test database, the cache, the broker."""
    if not services.reachable("redis"):
        if services.in_ci():
            pytest.fail("Redis (cache and broker) not reachable and CI=true")
        pytest.skip("Redis not reachable: the tests with a real worker are skipped")
    test_db = f"/{connection.settings_dict['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.aggregates_helpers.settings",
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DATABASE_URL": urlsplit(os.environ["DATABASE_URL"])._replace(path=test_db).geturl(),
        "CELERY_BROKER_URL": BROKER_URL,
    }


@contextlib.contextmanager
def procfile_worker(env: dict[str, str], log: Path) -> Iterator[Process]:
    """The Procfile's worker with ``env``, started on an emptied queue, ready, then stopped."""
    worker = Process(
        "worker", env, log, "--pool solo --without-gossip --without-mingle --without-heartbeat"
    )
    try:
        worker.start("--purge")
        worker.wait_for(" ready.")
        yield worker
    finally:
        worker.terminate()


@pytest.fixture(scope="module")
def worker_process(process_env, tmp_path_factory):
    with procfile_worker(process_env, tmp_path_factory.mktemp("worker") / "worker.log") as w:
        yield w


@pytest.fixture
def worker(worker_process, settings) -> Process:
    """The running worker, which this process sends tasks to; writes refresh after 1 s."""
    settings.DRF_SCALE = {**settings.DRF_SCALE, "AGGREGATE_DEBOUNCE": 1}
    if worker_process.process is None:
        worker_process.start()
        worker_process.wait_for(" ready.")
    replaced = configure_celery(broker_url=BROKER_URL, task_always_eager=False)
    yield worker_process
    configure_celery(**replaced)


@pytest.fixture
def sent(monkeypatch) -> list[tuple[tuple, int]]:
    """The refreshes this process sends to the real broker."""
    broker = Broker(task=aggregates.refresh_aggregate)
    monkeypatch.setattr(aggregates, "refresh_aggregate", broker)
    return broker.sent


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker")
class TestWithWorker:
    def test_a_burst_of_writes_is_one_refresh_after_the_debounce(self, sent):
        for name in "abcde":  # five transactions
            Group.objects.create(name=name)
        entry = wait_until(fresh, what="the refresh")
        assert entry.value == {"groups": 5, "run": 1}
        assert sent == [(("probe", PARAMS), 1)]  # after AGGREGATE_DEBOUNCE seconds

    def test_a_failing_refresh_retries_with_backoff_and_keeps_the_old_value(self, worker):
        old = aged({"groups": -1})
        probe.store(PARAMS, old)
        cache.set(probes.FAIL, True)
        refresh_aggregate.delay("probe", PARAMS)
        wait_until(lambda: probes.runs() >= 2, what="a failed run and a failed retry")
        assert probe.read(PARAMS) == old
        assert "retry: Retry in" in worker.output()
        cache.delete(probes.FAIL)
        assert wait_until(fresh, what="a successful retry").value["groups"] == 0

    def test_the_stale_result_is_served_while_the_worker_is_down(self, worker, sent):
        probe.store(PARAMS, aged({"groups": -1}))
        worker.terminate()
        for _ in range(3):
            response = get_probe()
            assert response.status_code == 200
            assert (response.data["results"], response.data["stale"]) == ({"groups": -1}, True)
            assert int(response["Age"]) >= 1000
        assert sent == [(("probe", PARAMS), 0)]  # queued once, for when a worker is back
        worker.start()
        assert wait_until(fresh, what="the queued refresh").value == {"groups": 0, "run": 1}

    def test_concurrent_misses_wait_for_the_worker_computing(self):
        cache.set(probes.DELAY, 1)
        refresh_aggregate.delay("probe", PARAMS)
        wait_until(lambda: probes.runs() == 1, what="the worker to start computing")
        responses = concurrently(get_probe, 5)
        assert [r.status_code for r in responses] == [200] * 5
        assert len({r.data["computed_at"] for r in responses}) == 1
        assert probes.runs() == 1

    def test_the_web_process_serves_what_the_worker_computed(self, process_env, tmp_path):
        make_catalog()  # committed writes to the sales tables: debounced refreshes
        top, expected = shop_aggregates.top_products, stats.top_products(7)
        entry = wait_until(
            lambda: (e := fresh(top, {"days": 7})) and e.value == expected and e,
            what="the worker to compute top-products?days=7",
        )
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        env = {**process_env, "PORT": str(port), "WEB_CONCURRENCY": "1"}
        web = Process("web", env, tmp_path / "web.log")
        web.start()
        try:
            url = f"http://127.0.0.1:{port}/api/stats/top-products/?days=7"
            body = wait_until(lambda: get_json(url), what=url)
        finally:
            web.terminate()
        assert body["results"] == expected
        computed_at = datetime.fromisoformat(body["computed_at"]).timestamp()
        assert computed_at == pytest.approx(entry.computed_at, abs=0.001)  # not recomputed

    def test_beat_refreshes_on_the_generated_schedule(self, process_env, tmp_path):
        env = {**process_env, "BEAT_SCHEDULE_FILE": str(tmp_path / "schedule")}
        beat = Process("beat", env, tmp_path / "beat.log")
        beat.start()
        try:
            wait_until(lambda: probes.runs() >= 2, what="two refreshes from beat")
        finally:
            beat.terminate()
        sending = "Sending due task probe?scale=1 (drf_scale.aggregates.refresh_aggregate)"
        assert sending in beat.output()
