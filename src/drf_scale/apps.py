"""Django app configuration: wires query recording into every connection, registers checks."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.urls import get_resolver
from django.utils.module_loading import autodiscover_modules


class DrfScaleConfig(AppConfig):
    name = "drf_scale"
    verbose_name = "drf-scale"

    def ready(self) -> None:
        from drf_scale import checks, queries  # noqa: F401 - checks registers on import
        from drf_scale.cache import invalidation

        connection_created.connect(queries.install_recorder, dispatch_uid="drf_scale.recorder")
        autodiscover_modules("aggregates")  # each app's aggregates.py registers its aggregates
        invalidation.connect_signals()
        # Cached views register what their representations embed when their class is defined:
        # import the URLconf so every process (web, worker) knows them before its first write.
        get_resolver().url_patterns  # noqa: B018
