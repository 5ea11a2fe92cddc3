"""Settings of the processes the aggregate tests start: the test settings plus the probes."""

import os

from tests.settings import *  # noqa: F403

CELERY_IMPORTS = ["tests.aggregates_helpers.probes"]

# EDGE_TEST_API: the edge API stand-in of tests/test_edge.py, which the worker's purges reach.
if os.environ.get("EDGE_TEST_API"):
    DRF_SCALE = {
        **DRF_SCALE,  # noqa: F405
        "EDGE_KEY_HEADER": "Surrogate-Key",
        "EDGE_PURGER": "drf_scale.edge.FastlyPurger",
        "EDGE_PURGER_OPTIONS": {
            "service_id": "svc1", "token": "t0k", "api": os.environ["EDGE_TEST_API"],
        },
    }  # fmt: skip
