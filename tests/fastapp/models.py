"""Models for the compiled read plan tests: every field type, nulls, each kind of relation."""

import uuid

from django.db import models


class Country(models.Model):
    code = models.CharField(max_length=2, unique=True)

    class Meta:
        ordering = ["code"]


class Maker(models.Model):
    name = models.CharField(max_length=50)
    country = models.ForeignKey(
        Country, null=True, related_name="makers", on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["id"]


class Label(models.Model):
    slug = models.SlugField(unique=True)

    class Meta:
        ordering = ["-slug"]  # not the insertion order


class Gadget(models.Model):
    class Size(models.TextChoices):
        SMALL = "s", "Small"
        LARGE = "l", "Large"

    name = models.CharField(max_length=50)
    notes = models.TextField(blank=True)
    size = models.CharField(max_length=1, choices=Size.choices, default=Size.SMALL)
    rank = models.IntegerField(null=True)
    big = models.BigIntegerField(default=0)
    small = models.PositiveSmallIntegerField(null=True)
    weight = models.FloatField(null=True)
    price = models.DecimalField(max_digits=9, decimal_places=3, null=True)
    active = models.BooleanField(default=True)
    flag = models.BooleanField(null=True)
    released = models.DateField(null=True)
    seen_at = models.DateTimeField(null=True)
    opens = models.TimeField(null=True)
    lasts = models.DurationField(null=True)
    uid = models.UUIDField(default=uuid.uuid4)
    data = models.JSONField(null=True)
    email = models.EmailField(blank=True)
    site = models.URLField(blank=True)
    ip = models.GenericIPAddressField(null=True)
    maker = models.ForeignKey(Maker, null=True, related_name="gadgets", on_delete=models.SET_NULL)
    labels = models.ManyToManyField(Label, related_name="gadgets", blank=True)

    @property
    def shout(self) -> str:
        return self.name.upper()


class Part(models.Model):
    gadget = models.ForeignKey(Gadget, related_name="parts", on_delete=models.CASCADE)
    name = models.CharField(max_length=50)
    position = models.IntegerField()
    labels = models.ManyToManyField(Label, related_name="parts", blank=True)

    class Meta:
        ordering = ["position", "id"]


class Spec(models.Model):
    gadget = models.OneToOneField(Gadget, related_name="spec", on_delete=models.CASCADE)
    summary = models.CharField(max_length=100)
