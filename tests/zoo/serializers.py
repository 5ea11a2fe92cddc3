"""Serializers in the shapes real DRF applications write, on the test apps' models.

Each is what a DRF user writes, with drf_scale's decorators only where its docs ask for them
(``@batch`` on a per-user method field, ``@requires`` on what code reads past the fields).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from drf_scale.fast import batch
from drf_scale.planner import requires
from tests.fastapp.models import Device as Gadgetry
from tests.fastapp.models import Gadget, Grant, Label
from tests.testapp.models import Device, Maker, Remark, Series

# 1. DRF's stock HyperlinkedModelSerializer: a url and foreign keys as links.


class HyperlinkedDeviceSerializer(serializers.HyperlinkedModelSerializer):
    class Meta:
        model = Device
        fields = ["url", "id", "name", "maker", "series"]


class HyperlinkedGadgetrySerializer(serializers.HyperlinkedModelSerializer):
    """Links to a nullable foreign key and through a many-to-many, a custom model field."""

    class Meta:
        model = Gadgetry
        fields = ["url", "id", "name", "mac", "gadget", "labels"]


# 2. Base serializers that shape their fields per request.


class DynamicFieldsModelSerializer(serializers.ModelSerializer):
    """The DRF docs' recipe: ``?fields=a,b`` keeps those fields, ``?omit=c`` drops those."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is None:
            return
        params = request.query_params
        if wanted := params.get("fields"):
            for name in set(self.fields) - set(wanted.split(",")):
                self.fields.pop(name)
        for name in params.get("omit", "").split(","):
            self.fields.pop(name, None)


class DynamicDeviceSerializer(DynamicFieldsModelSerializer):
    family = serializers.CharField(read_only=True)  # a property with @requires

    class Meta:
        model = Device
        fields = ["id", "name", "maker", "series", "family"]


class PermissionAwareModelSerializer(serializers.ModelSerializer):
    """Takes ``user=`` from the view; drops ``Meta.staff_only`` fields for anyone else."""

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user is None or not user.is_staff:
            for name in getattr(self.Meta, "staff_only", ()):
                self.fields.pop(name, None)


class PermissionAwareGadgetrySerializer(PermissionAwareModelSerializer):
    class Meta:
        model = Gadgetry
        fields = ["id", "name", "mac", "cents"]
        staff_only = ["mac"]


# 3. A per-user permission method field, batched and not.


class BatchedCanChangeSerializer(serializers.ModelSerializer):
    can_change = serializers.SerializerMethodField()

    class Meta:
        model = Gadgetry
        fields = ["id", "name", "can_change"]

    @batch("id")
    def get_can_change(self, rows: list[dict]) -> list[bool]:
        user = self.context["request"].user
        if user.is_staff:
            return [True] * len(rows)
        ids = [row["id"] for row in rows]
        granted = set(
            Grant.objects.filter(user=user, device__in=ids).values_list("device", flat=True)
        )
        return [row["id"] in granted for row in rows]


class CanChangeSerializer(serializers.ModelSerializer):
    """The same answer per instance, from the prefetched grants (declared with @requires)."""

    can_change = serializers.SerializerMethodField()

    class Meta:
        model = Gadgetry
        fields = ["id", "name", "can_change"]

    @requires(prefetch=["grants"])
    def get_can_change(self, device: Gadgetry) -> bool:
        user = self.context["request"].user
        return user.is_staff or any(grant.user_id == user.pk for grant in device.grants.all())


# 4. Representations overridden: the list's, and each instance's re-reading a relation.


class NumberedListSerializer(serializers.ListSerializer):
    def to_representation(self, data: Any) -> list[Any]:
        items = super().to_representation(data)
        return [{"position": index, **item} for index, item in enumerate(items)]


class NumberedDeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = ["id", "name", "maker"]
        list_serializer_class = NumberedListSerializer


@requires(prefetch=["remarks"])
class RemarkedDeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = ["id", "name", "series"]

    def to_representation(self, instance: Device) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["remarks"] = [remark.body for remark in instance.remarks.all()]
        return data


# 5. Generic foreign keys and generic relations.


class TargetField(serializers.Field):
    """Whatever a remark is about (a device or a maker), from that row alone."""

    def to_representation(self, value: Any) -> str:
        return f"{type(value).__name__}:{value.pk}:{value.name}"


class RemarkSerializer(serializers.ModelSerializer):
    target = TargetField(source="content_object", read_only=True)
    about = serializers.SerializerMethodField()

    class Meta:
        model = Remark
        fields = ["id", "body", "content_type", "object_id", "target", "about"]

    @requires(prefetch=["content_object"])
    def get_about(self, remark: Remark) -> str:
        return remark.content_object.name.upper()


class RemarkBodySerializer(serializers.ModelSerializer):
    class Meta:
        model = Remark
        fields = ["id", "body"]


class DeviceRemarksSerializer(serializers.ModelSerializer):
    remarks = RemarkBodySerializer(many=True, read_only=True)
    remark_ids = serializers.PrimaryKeyRelatedField(source="remarks", many=True, read_only=True)

    class Meta:
        model = Device
        fields = ["id", "name", "remarks", "remark_ids"]


# 6. Files, images and a third-party-style model field (DRF's ModelField).


class GadgetryFilesSerializer(serializers.ModelSerializer):
    class Meta:
        model = Gadgetry
        fields = ["id", "name", "mac", "cents", "manual", "photo"]


# 7. Properties and __str__ reading relations.


class DeviceStringsSerializer(serializers.ModelSerializer):
    maker = serializers.StringRelatedField()
    series = serializers.StringRelatedField()  # Series.__str__ reads its maker (@requires)
    display = serializers.CharField(source="__str__", read_only=True)
    family = serializers.CharField(read_only=True)  # Device.family, a property with @requires

    class Meta:
        model = Device
        fields = ["id", "display", "maker", "series", "family"]


# 8. An annotation the view adds (get_queryset), read by a read-only field.


class DeviceRemarkCountSerializer(serializers.ModelSerializer):
    remark_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Device
        fields = ["id", "name", "maker", "remark_count"]


# 9. Ordering through foreign keys (Device.Meta.ordering = ["maker", "name"]), plain fields.


class DeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = ["id", "name", "maker", "series"]


# 10. A manager as the view's queryset (queryset = Device.objects), a dotted source.


class DeviceMakerNameSerializer(serializers.ModelSerializer):
    maker_name = serializers.CharField(source="maker.name", read_only=True)

    class Meta:
        model = Device
        fields = ["id", "name", "maker_name"]


# 11. Related fields of their own (NetBox's ContentTypeField), declaring what they read.


class ContentTypeField(serializers.RelatedField):
    """A content type as ``app_label.model``, from those two columns alone."""

    compiled_reads = ("app_label", "model")

    def to_representation(self, value: Any) -> str:
        return f"{value.app_label}.{value.model}"


class LabelSlugField(serializers.RelatedField):
    compiled_reads = ("slug",)

    def to_representation(self, value: Any) -> str:
        return f"#{value.slug}"


class RemarkTypeSerializer(serializers.ModelSerializer):
    content_type = ContentTypeField(read_only=True)

    class Meta:
        model = Remark
        fields = ["id", "body", "content_type", "object_id"]


class GadgetryLabelsSerializer(serializers.ModelSerializer):
    labels = LabelSlugField(many=True, read_only=True)

    class Meta:
        model = Gadgetry
        fields = ["id", "name", "labels"]


# 12. NetBox's shape: a url, a display method field, brief nested serializers with their own.


class BriefMakerSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="maker-detail")
    display = serializers.SerializerMethodField()

    class Meta:
        model = Maker
        fields = ["url", "id", "display", "name"]

    def get_display(self, maker: Maker) -> str:
        return str(maker)


class BriefSeriesSerializer(serializers.HyperlinkedModelSerializer):
    class Meta:
        model = Series
        fields = ["url", "id", "name"]


class DisplayedDeviceSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="device-detail")
    display = serializers.SerializerMethodField()
    maker = BriefMakerSerializer(read_only=True)
    series = BriefSeriesSerializer(read_only=True)
    remarks = serializers.SlugRelatedField(many=True, slug_field="body", read_only=True)

    class Meta:
        model = Device
        fields = ["url", "id", "display", "name", "maker", "series", "remarks"]

    @requires(select=["series__maker"])
    def get_display(self, device: Device) -> str:
        return str(device)


# 13. NetBox's custom fields: a JSON column naming objects, which its list serializer fetches
# for the whole page into the context before DRF renders the rows (many_init picks it).


class CustomFieldsField(serializers.Field):
    """The values of a JSON column; ``label`` and ``devices`` name objects, read from the
    list's ``cf_object_cache`` when there is one, else queried (a single object's render)."""

    OBJECTS = {"label": Label, "devices": Gadgetry}

    def to_representation(self, data: Any) -> dict[str, Any]:
        cache = self.parent.context.get("cf_object_cache")
        values = dict(data or {})
        for name, model in self.OBJECTS.items():
            raw = values.get(name)
            if raw is None:
                continue
            keys = raw if isinstance(raw, list) else [raw]
            found = cache if cache is not None else model.objects.in_bulk(keys)
            objects = [found[(model, key) if cache is not None else key] for key in keys]
            brief = [{"id": obj.pk, "display": str(obj)} for obj in objects]
            values[name] = brief if isinstance(raw, list) else brief[0]
        return values


class CustomFieldListSerializer(serializers.ListSerializer):
    """Fetches the objects the page's custom fields name, one query per kind, for the rows."""

    def to_representation(self, data: Any) -> list[Any]:
        field = self.child.fields.get("custom_fields")
        if isinstance(field, CustomFieldsField):
            cache: dict[tuple[type, Any], Any] = {}
            for name, model in field.OBJECTS.items():
                keys: set[Any] = set()
                for item in data:
                    raw = (item.data or {}).get(name)
                    if raw is not None:
                        keys.update(raw if isinstance(raw, list) else [raw])
                cache.update(((model, o.pk), o) for o in model.objects.filter(pk__in=keys))
            self.child.context["cf_object_cache"] = cache
        return super().to_representation(data)


class CustomFieldsGadgetSerializer(serializers.ModelSerializer):
    custom_fields = CustomFieldsField(source="data", read_only=True)

    class Meta:
        model = Gadget
        fields = ["id", "name", "maker", "custom_fields"]

    @classmethod
    def many_init(cls, *args: Any, **kwargs: Any) -> Any:
        kwargs["child"] = cls()  # DRF's docs' recipe
        return CustomFieldListSerializer(*args, **kwargs)
