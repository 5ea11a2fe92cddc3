from django.apps import AppConfig


class SqlAppConfig(AppConfig):
    name = "tests.sqlapp"
    label = "sqlapp"
    default_auto_field = "django.db.models.BigAutoField"
