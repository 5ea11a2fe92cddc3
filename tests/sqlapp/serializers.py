"""Serializers for the SQL JSON renderer tests, as DRF apps write them."""

from rest_framework import serializers

from tests.sqlapp.models import Label, Note, Place, Reading

COLUMNS = [
    "id",
    "title",
    "body",
    "email",
    "slug",
    "count",
    "big",
    "small",
    "active",
    "flag",
    "ratio",
    "price",
    "amount",
    "taken_at",
    "day",
    "at",
    "uid",
    "kind",
    "level",
    "data",
]


class FlatReadingSerializer(serializers.ModelSerializer):
    """Every column, the foreign key as its primary key, and a dotted source across it."""

    place_name = serializers.CharField(source="place.name", allow_null=True, read_only=True)

    class Meta:
        model = Reading
        fields = [*COLUMNS, "place", "place_name"]


class ScalarReadingSerializer(FlatReadingSerializer):
    """The flat serializer without the JSON column (the per-type properties' serializer)."""

    class Meta(FlatReadingSerializer.Meta):
        fields = [name for name in FlatReadingSerializer.Meta.fields if name != "data"]


class JSONReadingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Reading
        fields = ["id", "data"]


class PlaceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Place
        fields = ["id", "name"]


class LabelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Label
        fields = ["id", "name"]


class NoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Note
        fields = ["id", "text", "written_at"]


class NestedReadingSerializer(serializers.ModelSerializer):
    """A to-one nested, a many-to-many nested and a reverse foreign key nested."""

    place = PlaceSerializer(allow_null=True, read_only=True)
    labels = LabelSerializer(many=True, read_only=True)
    notes = NoteSerializer(many=True, read_only=True)

    class Meta:
        model = Reading
        fields = ["id", "title", "taken_at", "place", "labels", "notes"]


class DecimalNumberReadingSerializer(serializers.ModelSerializer):
    """Decimals as JSON numbers, field by field (``coerce_to_string=False``)."""

    price = serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=False)
    amount = serializers.DecimalField(max_digits=20, decimal_places=8, coerce_to_string=False)

    class Meta:
        model = Reading
        fields = ["id", "price", "amount"]


class DecimalSettingReadingSerializer(serializers.ModelSerializer):
    """Decimals as the COERCE_DECIMAL_TO_STRING setting says, compiled under the override."""

    class Meta:
        model = Reading
        fields = ["id", "price", "amount", "ratio"]


# Serializers the SQL renderer cannot compile: each has one field that needs Python.


class MethodReadingSerializer(serializers.ModelSerializer):
    shout = serializers.SerializerMethodField()

    class Meta:
        model = Reading
        fields = ["id", "title", "shout"]

    def get_shout(self, obj: Reading) -> str:
        return obj.title.upper()


class LinkedReadingSerializer(serializers.ModelSerializer):
    link = serializers.HyperlinkedIdentityField(view_name="reading-detail")

    class Meta:
        model = Reading
        fields = ["id", "title", "link"]


class ReversedField(serializers.CharField):
    def to_representation(self, value: object) -> str:
        return str(value)[::-1]


class CustomFieldReadingSerializer(serializers.ModelSerializer):
    backwards = ReversedField(source="title", read_only=True)

    class Meta:
        model = Reading
        fields = ["id", "title", "backwards"]
