"""Settings of the processes the aggregate tests start: the test settings plus the probes."""

from tests.settings import *  # noqa: F403

CELERY_IMPORTS = ["tests.aggregates_helpers.probes"]
