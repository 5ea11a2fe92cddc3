"""A catalog with every relation kind the planner handles.

Product -> Brand, Category (FK); Category -> Category (self FK chain); Product <-> Tag (M2M);
Warranty -> Product (one-to-one, so Product.warranty is a reverse one-to-one);
Product -> Review (reverse FK), Review -> Customer (FK). Every model is ordered by id, so
plain and optimized renderings list related rows in the same order on every database.
"""

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
