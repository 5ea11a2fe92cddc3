"""Django app configuration: wires query recording into every connection."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class DrfScaleConfig(AppConfig):
    name = "drf_scale"
    verbose_name = "drf-scale"

    def ready(self) -> None:
        from drf_scale import queries

        connection_created.connect(queries.install_recorder, dispatch_uid="drf_scale.recorder")
