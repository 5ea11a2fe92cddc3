"""A third-party relation field as NetBox and many DRF applications use it: django-taggit."""

from django.db import models
from taggit.managers import TaggableManager


class Article(models.Model):
    title = models.CharField(max_length=100)
    tags = TaggableManager(blank=True)

    class Meta:
        ordering = ["id"]
