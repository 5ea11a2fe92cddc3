from django.apps import AppConfig


class FastAppConfig(AppConfig):
    name = "tests.fastapp"
    label = "fastapp"
    default_auto_field = "django.db.models.BigAutoField"
