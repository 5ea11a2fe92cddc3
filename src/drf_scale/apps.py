"""Django app configuration: registers checks and connects signals.

``ready()`` neither imports the URLconf nor touches the database. What cached views embed is
learnt when the process opens its first database connection (``drf_scale.cache.load_views``),
before it can write anything. With the celery extra installed, it imports each app's
``aggregates`` module, so that writes refresh the aggregates they feed.
"""

from importlib.util import find_spec

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.utils.module_loading import autodiscover_modules

__all__ = ["DrfScaleConfig"]


class DrfScaleConfig(AppConfig):
    name = "drf_scale"
    verbose_name = "drf-scale"

    def ready(self) -> None:
        from drf_scale import checks  # noqa: F401 - registers the system checks
        from drf_scale.cache import invalidation

        invalidation.connect_signals()
        connection_created.connect(invalidation.load_views, dispatch_uid="drf_scale.views")
        if find_spec("celery") is not None:  # the celery extra: each app's aggregates.py
            autodiscover_modules("aggregates")
            from drf_scale import edge_tasks  # noqa: F401 - workers know the edge purge task
