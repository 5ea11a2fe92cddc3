from django.apps import AppConfig


class PagingAppConfig(AppConfig):
    name = "tests.pagingapp"
    label = "pagingapp"
    default_auto_field = "django.db.models.BigAutoField"
