"""The Celery task that retries edge purges a write could not make (the celery extra).

Imported by ``drf_scale.edge`` when a purge fails, and by the app's ``ready()`` whenever
Celery is installed, so that workers know the task.
"""

from __future__ import annotations

import logging

from celery import current_app, shared_task

from drf_scale.edge import PurgeFailed, get_purger

__all__ = ["TASK_NAME", "purge_keys", "queues_tasks"]

logger = logging.getLogger("drf_scale.edge")
TASK_NAME = "drf_scale.edge.purge_keys"


@shared_task(
    name=TASK_NAME,
    autoretry_for=(PurgeFailed,),
    retry_backoff=True,  # 1, 2, 4, ... s (with jitter), up to a minute apart
    retry_backoff_max=60,
    max_retries=8,
    ignore_result=True,
)
def purge_keys(keys: list[str]) -> None:
    """Purge ``keys`` at the edge; retried with backoff while the edge does not take them,
    dropped (logged) when it refuses them for good (a 4xx other than 429)."""
    purger = get_purger()
    if purger is None:
        return
    try:
        purger.purge(keys)
    except PurgeFailed as failure:
        if failure.retry:
            raise
        logger.error("drf-scale: the edge refused a purge for good (%s): %s", failure, keys)


def queues_tasks() -> bool:
    """Whether tasks go to a configured broker (not run inline, where a retry would hold
    the write, nor to Celery's default broker, which nobody configured)."""
    conf = current_app.conf
    return bool(conf.broker_url) and not conf.task_always_eager
