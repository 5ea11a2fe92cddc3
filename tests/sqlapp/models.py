"""Models for the SQL JSON renderer property tests: the column shapes of real DRF apps."""

import uuid

from django.db import models


class Place(models.Model):
    name = models.CharField(max_length=100)


class Label(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        ordering = ["-name", "id"]  # not the insertion order


class Reading(models.Model):
    class Kind(models.TextChoices):
        MANUAL = "manual", "Manual"
        SENSOR = "sensor", "Sensor"
        IMPORTED = "imported", "Imported"

    class Level(models.IntegerChoices):
        LOW = 1, "Low"
        MID = 2, "Middle"
        HIGH = 3, "High"

    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    email = models.EmailField(blank=True)
    slug = models.SlugField(max_length=100, blank=True)
    count = models.IntegerField(default=0)
    big = models.BigIntegerField(default=0)
    small = models.SmallIntegerField(default=0)
    active = models.BooleanField(default=True)
    flag = models.BooleanField(null=True)
    ratio = models.FloatField(null=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    amount = models.DecimalField(max_digits=20, decimal_places=8, default=0)
    taken_at = models.DateTimeField(null=True)
    day = models.DateField()
    at = models.TimeField()
    uid = models.UUIDField(default=uuid.uuid4)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MANUAL)
    level = models.IntegerField(choices=Level.choices, default=Level.LOW)
    data = models.JSONField(null=True)
    place = models.ForeignKey(Place, null=True, related_name="readings", on_delete=models.SET_NULL)
    labels = models.ManyToManyField(Label, related_name="readings", blank=True)


class Note(models.Model):
    reading = models.ForeignKey(Reading, related_name="notes", on_delete=models.CASCADE)
    text = models.TextField()
    written_at = models.DateTimeField()

    class Meta:
        ordering = ["written_at", "id"]
