"""Django app configuration: wires query recording into every connection, registers checks."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.utils.module_loading import autodiscover_modules


class DrfScaleConfig(AppConfig):
    name = "drf_scale"
    verbose_name = "drf-scale"

    def ready(self) -> None:
        from drf_scale import checks, queries  # noqa: F401 - checks registers on import

        connection_created.connect(queries.install_recorder, dispatch_uid="drf_scale.recorder")
        autodiscover_modules("aggregates")  # each app's aggregates.py registers its aggregates
