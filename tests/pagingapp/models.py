"""Models for the pagination and count tests: ordering columns full of ties and NULLs."""

import uuid

from django.db import models


class Item(models.Model):
    """Duplicate-prone and nullable ordering columns, each with an index that matches it."""

    category = models.IntegerField(default=0)
    rank = models.IntegerField(null=True)
    score = models.DecimalField(max_digits=6, decimal_places=2)
    created = models.DateTimeField()
    name = models.CharField(max_length=30, default="")  # deliberately unindexed

    class Meta:
        indexes = [
            models.Index(fields=["score", "id"], name="item_score_id"),
            models.Index(fields=["created", "id"], name="item_created_id"),
            models.Index(fields=["rank", "id"], name="item_rank_id"),
            models.Index(fields=["score", "-created", "-id"], name="item_score_created_desc"),
            models.Index(fields=["category", "created", "id"], name="item_category_created_id"),
        ]


class Event(models.Model):
    """A UUID key, a nullable timestamp and a decimal: cursor values that must round-trip."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    at = models.DateTimeField(null=True)
    amount = models.DecimalField(max_digits=12, decimal_places=4)

    class Meta:
        indexes = [models.Index(fields=["at", "id"], name="event_at_id")]


class Scratch(models.Model):
    """A table each PostgreSQL count test creates in its own transaction, never analyzed."""

    bucket = models.IntegerField()
    value = models.IntegerField()

    class Meta:
        managed = False
        db_table = "pagingapp_scratch"
