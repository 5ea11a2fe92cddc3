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


# Column types DRF has no field for (ModelSerializer maps them to ModelField), files, links.


class MAC:
    """A MAC address value: not a str, so DRF's ModelField writes it with value_to_string()."""

    def __init__(self, digits: str) -> None:
        self.digits = digits.upper()

    def __str__(self) -> str:
        return ":".join(self.digits[i : i + 2] for i in range(0, len(self.digits), 2))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MAC) and other.digits == self.digits

    def __hash__(self) -> int:
        return hash(self.digits)


class MACAddressField(models.Field):
    """A third-party-style field: normalizes what it reads, writes its own text form."""

    description = "A MAC address"

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("max_length", 17)
        super().__init__(*args, **kwargs)

    def get_internal_type(self) -> str:
        return "CharField"

    def from_db_value(self, value, expression, connection):
        return self.to_python(value)

    def to_python(self, value):
        if value is None or isinstance(value, MAC):
            return value
        return MAC("".join(c for c in str(value) if c in "0123456789abcdefABCDEF"))

    def get_prep_value(self, value):
        return None if value is None else str(self.to_python(value))

    def value_to_string(self, obj) -> str:
        return str(self.value_from_object(obj)).replace(":", "-").lower()


class CentsField(models.Field):
    """A custom integer column: its values are protected types, which ModelField passes on."""

    def get_internal_type(self) -> str:
        return "IntegerField"


class Device(models.Model):
    name = models.CharField(max_length=50)
    mac = MACAddressField(null=True)
    cents = CentsField(null=True)
    manual = models.FileField(upload_to="manuals/", blank=True, null=True)
    photo = models.ImageField(upload_to="photos/", blank=True)
    gadget = models.ForeignKey(Gadget, null=True, related_name="devices", on_delete=models.SET_NULL)
    labels = models.ManyToManyField(Label, related_name="devices", blank=True)

    class Meta:
        ordering = ["id"]


class Grant(models.Model):
    """Who may change a device: the per-user question a batched method field answers."""

    user = models.ForeignKey("auth.User", related_name="+", on_delete=models.CASCADE)
    device = models.ForeignKey(Device, related_name="grants", on_delete=models.CASCADE)
