"""A catalog with every relation kind the planner handles.

Product -> Brand, Category (FK); Category -> Category (self FK chain); Product <-> Tag (M2M);
Warranty -> Product (one-to-one, so Product.warranty is a reverse one-to-one);
Product -> Review (reverse FK), Review -> Customer (FK). Every model is ordered by id, so
plain and optimized renderings list related rows in the same order on every database.

Maker, Series and Device (and its proxies) are ordered through foreign keys to models with an
ordering of their own; Remark has a generic foreign key, and Device.remarks is its generic
relation.
"""

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models

from drf_scale.planner import requires


class Brand(models.Model):
    name = models.CharField(max_length=50)
    country = models.CharField(max_length=50, default="")

    class Meta:
        ordering = ["id"]


class Category(models.Model):
    name = models.CharField(max_length=50)
    parent = models.ForeignKey(
        "self", null=True, blank=True, related_name="children", on_delete=models.CASCADE
    )

    class Meta:
        ordering = ["id"]


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["id"]


class Customer(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        ordering = ["id"]


class Product(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived"

    name = models.CharField(max_length=100)
    description = models.TextField(default="")
    price = models.DecimalField(max_digits=8, decimal_places=2)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    brand = models.ForeignKey(Brand, related_name="products", on_delete=models.CASCADE)
    category = models.ForeignKey(Category, related_name="products", on_delete=models.CASCADE)
    tags = models.ManyToManyField(Tag, related_name="products", blank=True)

    class Meta:
        ordering = ["id"]

    @property
    @requires(select=["name", "brand__name"])
    def label(self) -> str:
        return f"{self.brand.name} {self.name}"

    @property
    def shouting_name(self) -> str:
        return self.name.upper()


class Warranty(models.Model):
    product = models.OneToOneField(Product, related_name="warranty", on_delete=models.CASCADE)
    years = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["id"]


class Review(models.Model):
    product = models.ForeignKey(Product, related_name="reviews", on_delete=models.CASCADE)
    customer = models.ForeignKey(Customer, related_name="reviews", on_delete=models.CASCADE)
    rating = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=100, default="")

    class Meta:
        ordering = ["id"]


# Orderings through foreign keys, generic relations, and __str__ that reads relations.


class Maker(models.Model):
    """Ordered by name, which sorts unlike the ids."""

    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Series(models.Model):
    """Ordered by its maker (so by the maker's name), then its own name."""

    name = models.CharField(max_length=50)
    maker = models.ForeignKey(Maker, related_name="series", on_delete=models.CASCADE)

    class Meta:
        ordering = ["maker", "name"]

    @requires(select=["name", "maker__name"])
    def __str__(self) -> str:
        return f"{self.maker.name}/{self.name}"


class Remark(models.Model):
    """A remark on any row: a generic foreign key."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")
    body = models.CharField(max_length=100)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["content_type", "object_id"])]


class Device(models.Model):
    """Ordered by a foreign key to a model with an ordering of its own."""

    name = models.CharField(max_length=50, unique=True)
    maker = models.ForeignKey(Maker, related_name="devices", on_delete=models.CASCADE)
    series = models.ForeignKey(Series, related_name="devices", on_delete=models.CASCADE)
    remarks = GenericRelation(Remark)

    class Meta:
        ordering = ["maker", "name"]

    @requires(select=["name", "series__name", "series__maker__name"])
    def __str__(self) -> str:
        return f"{self.series}:{self.name}"

    @property
    @requires(select=["series__maker__name"])
    def family(self) -> str:
        return self.series.maker.name


class DeviceBySeries(Device):
    """Ordered through two foreign keys: series, then the series's maker."""

    class Meta:
        proxy = True
        ordering = ["series", "name"]


class DeviceDescending(Device):
    """Ordered by a foreign key, descending."""

    class Meta:
        proxy = True
        ordering = ["-maker", "name"]
