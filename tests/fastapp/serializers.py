"""Serializers over every supported field and relation kind, and ones that must fall back."""

from django.db.models import Count, Prefetch
from rest_framework import serializers

from drf_scale.fast import batch
from drf_scale.planner import requires
from tests.fastapp.models import Country, Device, Gadget, Grant, Label, Maker, Part, Spec


class CountrySerializer(serializers.ModelSerializer):
    class Meta:
        model = Country
        fields = ["id", "code"]


class MakerSerializer(serializers.ModelSerializer):
    country = CountrySerializer(read_only=True)
    label = serializers.SerializerMethodField()

    class Meta:
        model = Maker
        fields = ["id", "name", "country", "label"]

    @batch("name", "country__code")
    def get_label(self, rows: list[dict]) -> list[str]:
        return [f"{row['name']} ({row['country__code'] or '?'})" for row in rows]


class PartSerializer(serializers.ModelSerializer):
    labels = serializers.SlugRelatedField(many=True, read_only=True, slug_field="slug")

    class Meta:
        model = Part
        fields = ["id", "name", "position", "labels"]


class SpecSerializer(serializers.ModelSerializer):
    class Meta:
        model = Spec
        fields = ["id", "summary"]


class GadgetCoreSerializer(serializers.ModelSerializer):
    """Every column type, mapped by ModelSerializer."""

    class Meta:
        model = Gadget
        fields = [
            "id", "name", "notes", "size", "rank", "big", "small", "weight", "price",
            "active", "flag", "released", "seen_at", "opens", "lasts", "uid", "data",
            "email", "site", "ip", "maker", "labels",
        ]  # fmt: skip


@requires(
    annotate={"part_count": Count("parts", distinct=True)},
    prefetch=[
        Prefetch(
            "parts", queryset=Part.objects.order_by("-position", "-id")[:2], to_attr="top_parts"
        )
    ],
)
class GadgetSerializer(GadgetCoreSerializer):
    """Relations of each kind, dotted sources, formats, annotations, batches, source='*'."""

    maker_name = serializers.CharField(source="maker.name", read_only=True)
    maker_country = serializers.CharField(
        source="maker.country.code", read_only=True, allow_null=True
    )
    maker_detail = MakerSerializer(source="maker", read_only=True)
    maker_slug = serializers.SlugRelatedField(source="maker", slug_field="name", read_only=True)
    label_slugs = serializers.SlugRelatedField(
        source="labels", many=True, slug_field="slug", read_only=True
    )
    parts = PartSerializer(many=True, read_only=True)
    top_parts = PartSerializer(many=True, read_only=True)
    spec = SpecSerializer(read_only=True)
    spec_id = serializers.PrimaryKeyRelatedField(source="spec", read_only=True)
    part_count = serializers.IntegerField(read_only=True)
    price_rounded = serializers.DecimalField(
        source="price", max_digits=12, decimal_places=1, coerce_to_string=False, read_only=True
    )
    seen_day = serializers.DateTimeField(source="seen_at", format="%Y-%m-%d %H:%M %Z")
    seen_raw = serializers.DateTimeField(source="seen_at", format=None)
    released_text = serializers.DateField(source="released", format="%d/%m/%Y")
    weight_text = serializers.CharField(source="weight")
    uid_hex = serializers.UUIDField(source="uid", format="hex")
    summary = serializers.SerializerMethodField()
    whole = GadgetCoreSerializer(source="*", read_only=True)

    class Meta(GadgetCoreSerializer.Meta):
        fields = [
            *GadgetCoreSerializer.Meta.fields,
            "maker_name", "maker_country", "maker_detail", "maker_slug", "label_slugs",
            "parts", "top_parts", "spec", "spec_id", "part_count", "price_rounded", "seen_day",
            "seen_raw", "released_text", "weight_text", "uid_hex", "summary", "whole",
        ]  # fmt: skip

    @batch("rank", "maker__name", "part_count")
    def get_summary(self, rows: list[dict]) -> list[str]:
        return [f"{row['maker__name']}#{row['rank']}/{row['part_count']}" for row in rows]


class LabelSerializer(serializers.ModelSerializer):
    """The reverse many-to-many side."""

    gadgets = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    parts = PartSerializer(many=True, read_only=True)

    class Meta:
        model = Label
        fields = ["id", "slug", "gadgets", "parts"]


class RequestField(serializers.CharField):
    """A value-only custom field that reads the serializer context."""

    def to_representation(self, value) -> str:
        request = self.context.get("request")
        return f"{value}@{request.path if request else '-'}"


class ContextSerializer(serializers.ModelSerializer):
    name = RequestField()
    who = serializers.SerializerMethodField()

    class Meta:
        model = Gadget
        fields = ["id", "name", "who"]

    @batch("id")
    def get_who(self, rows: list[dict]) -> list[str]:
        return [self.context.get("who", "nobody")] * len(rows)


class UnbatchedSerializer(serializers.ModelSerializer):
    shout = serializers.SerializerMethodField()

    class Meta:
        model = Gadget
        fields = ["id", "shout"]

    def get_shout(self, gadget: Gadget) -> str:
        return gadget.name.upper()


class InstanceField(serializers.Field):
    def to_representation(self, gadget: Gadget) -> str:
        return f"{gadget.pk}:{gadget.name}"


class FallbackSerializer(serializers.ModelSerializer):
    """One field of each kind the compiler refuses."""

    shout = serializers.ReadOnlyField()  # a model property
    both = InstanceField(source="*")
    maker_text = serializers.StringRelatedField(source="maker")
    method = serializers.SerializerMethodField()

    class Meta:
        model = Gadget
        fields = ["id", "shout", "both", "maker_text", "method"]

    def get_method(self, gadget: Gadget) -> int:
        return gadget.pk


class CustomRepresentationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Gadget
        fields = ["id", "name"]

    def to_representation(self, instance):
        return {**super().to_representation(instance), "extra": True}


class DeviceSerializer(serializers.HyperlinkedModelSerializer):
    """DRF's stock hyperlinked serializer: a url, foreign key links, model fields DRF has no
    field for (ModelField), files and images."""

    url_html = serializers.HyperlinkedIdentityField(view_name="device-detail", format="html")
    gadget_by_name = serializers.HyperlinkedRelatedField(
        source="gadget", view_name="gadget-by-name", lookup_field="name", read_only=True
    )
    labels = serializers.HyperlinkedRelatedField(
        many=True,
        read_only=True,
        view_name="label-detail",
        lookup_field="slug",
        lookup_url_kwarg="slug_value",
    )

    class Meta:
        model = Device
        fields = [
            "url", "url_html", "id", "name", "mac", "cents", "manual", "photo", "gadget",
            "gadget_by_name", "labels",
        ]  # fmt: skip


class NamespacedDeviceSerializer(serializers.HyperlinkedModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="links:device-detail")
    gadget = serializers.HyperlinkedRelatedField(view_name="links:gadget-detail", read_only=True)

    class Meta:
        model = Device
        fields = ["url", "gadget"]


class DevicePermissionSerializer(serializers.ModelSerializer):
    """A per-user field for a whole page in one query: the batch reads the request's user."""

    can_change = serializers.SerializerMethodField()

    class Meta:
        model = Device
        fields = ["id", "name", "can_change"]

    @batch("id")
    def get_can_change(self, rows: list[dict]) -> list[bool]:
        user = self.context["request"].user
        if not user.is_authenticated:
            return [False] * len(rows)
        if user.is_superuser:
            return [True] * len(rows)
        ids = [row["id"] for row in rows]
        granted = set(
            Grant.objects.filter(user=user, device__in=ids).values_list("device", flat=True)
        )
        return [row["id"] in granted for row in rows]
