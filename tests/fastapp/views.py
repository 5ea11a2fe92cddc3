"""Routed views for the read-path checks: compiled, falling back, introspected, "__all__"."""

from rest_framework import serializers, viewsets

from drf_scale.mixins import FastReadMixin, OptimizedQuerysetMixin
from tests.fastapp import serializers as fast
from tests.fastapp.models import Gadget, Maker


class EveryMakerField(serializers.ModelSerializer):
    class Meta:
        model = Maker
        fields = "__all__"


class WithEveryMakerField(serializers.ModelSerializer):
    maker = EveryMakerField(read_only=True)

    class Meta:
        model = Gadget
        fields = ["id", "maker"]


class CompiledGadgets(FastReadMixin, OptimizedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Gadget.objects.all()
    serializer_class = fast.GadgetSerializer


class FallingGadgets(FastReadMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Gadget.objects.all()
    serializer_class = fast.UnbatchedSerializer


class IntrospectedGadgets(OptimizedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Gadget.objects.all()
    serializer_class = fast.GadgetCoreSerializer


class NestedAllGadgets(viewsets.ReadOnlyModelViewSet):
    queryset = Gadget.objects.all()
    serializer_class = WithEveryMakerField
