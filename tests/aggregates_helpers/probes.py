"""An aggregate the tests drive: it counts its runs in the cache and stalls or fails on demand."""

import time

from django.contrib.auth.models import Group
from django.core.cache import cache

from drf_scale.aggregates import aggregate

RUNS = "tests:probe:runs"  # how many times the probe started
DELAY = "tests:probe:delay"  # seconds each run sleeps
FAIL = "tests:probe:fail"  # set: runs raise


def runs() -> int:
    return cache.get(RUNS, 0)


@aggregate("probe", refresh_every=1, max_age=60, depends_on=[Group], params={"scale": (1, 10)})
def probe(scale: int = 1) -> dict[str, int]:
    """The number of groups times ``scale``, and which run computed it."""
    cache.add(RUNS, 0, None)
    run = cache.incr(RUNS)
    time.sleep(cache.get(DELAY, 0))
    if cache.get(FAIL):
        raise RuntimeError("the probe fails on purpose")
    return {"groups": Group.objects.count() * scale, "run": run}
