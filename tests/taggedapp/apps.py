from django.apps import AppConfig


class TaggedAppConfig(AppConfig):
    """Models with django-taggit's TaggableManager: a third-party many-to-many field."""

    name = "tests.taggedapp"
    label = "taggedapp"
    default_auto_field = "django.db.models.BigAutoField"
