"""The Celery app; without CELERY_BROKER_URL tasks run in-process (eager).

Run a worker and beat next to the web processes (see example/Procfile). Beat
refreshes every registered aggregate on its interval (drf_scale.aggregates).
"""

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
app = Celery("example")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(related_name="aggregates")  # each app's aggregates.py and its task


@app.on_after_finalize.connect
def schedule_aggregates(sender: Celery, **kwargs: Any) -> None:
    """Add each registered aggregate's refresh to the beat schedule."""
    from drf_scale.aggregates import beat_schedule

    sender.conf.beat_schedule = {**sender.conf.beat_schedule, **beat_schedule()}
