"""drf_scale.model_meta: the kind, models and names of each relation shape of the test models."""

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.test.utils import isolate_apps
from rest_framework import serializers

from drf_scale import model_meta
from drf_scale.cache.invalidation import Dependency
from drf_scale.fast import compile_read_plan
from drf_scale.model_meta import Kind, ModelField, Relation, attribute, relation, walk
from drf_scale.planner import plan_for
from shop import models as shop
from tests.fastapp.models import Gadget, Label, Maker, Spec
from tests.pagingapp.models import Event
from tests.testapp.models import Brand, Category, Product, Review, Tag, Warranty


def found(model: type[models.Model], name: str) -> Relation:
    step = attribute(model, name)
    assert isinstance(step, Relation)
    assert relation(model, name) is step
    return step


def test_a_forward_foreign_key():
    brand = found(Product, "brand")
    assert brand.kind is Kind.FOREIGN_KEY
    assert (brand.model, brand.related_model) == (Product, Brand)
    assert (brand.name, brand.accessor, brand.attname, brand.back) == (
        "brand",
        "brand",
        "brand_id",
        "products",
    )
    assert (brand.forward, brand.many, brand.null, brand.plannable) == (True, False, False, True)
    assert brand.field is Product._meta.get_field("brand")
    assert brand.declaring_field is brand.field
    assert set(brand.key_names) == {"id", "pk"}


def test_a_foreign_key_by_its_attname_is_a_column_and_still_names_the_relation():
    key = attribute(Product, "brand_id")
    assert key == ModelField("brand", "brand_id", Product._meta.get_field("brand"), True, True)
    assert relation(Product, "brand_id") is found(Product, "brand")
    assert model_meta.column_attname(Product, "brand") == "brand_id"
    assert model_meta.column_attname(Product, "brand_id") == "brand_id"


def test_nullable_foreign_keys():
    parent = found(Category, "parent")
    assert (parent.kind, parent.model, parent.related_model) == (
        Kind.FOREIGN_KEY,
        Category,
        Category,
    )
    assert (parent.null, parent.back) == (True, "children")
    country = found(Maker, "country")
    assert (country.null, country.back, country.attname) == (True, "makers", "country_id")
    assert set(country.key_names) == {"id", "pk"}


def test_one_to_one_both_directions():
    forward = found(Warranty, "product")
    assert (forward.kind, forward.related_model, forward.back) == (
        Kind.FOREIGN_KEY,
        Product,
        "warranty",
    )
    reverse = found(Product, "warranty")
    assert reverse.kind is Kind.REVERSE_ONE_TO_ONE
    assert (reverse.model, reverse.related_model) == (Product, Warranty)
    assert (reverse.name, reverse.accessor, reverse.back, reverse.attname) == (
        "warranty",
        "warranty",
        "product",
        None,
    )
    assert (reverse.forward, reverse.many, reverse.null) == (False, False, True)
    assert reverse.declaring_field is forward.field
    assert found(Gadget, "spec").related_model is Spec
    assert model_meta.column_attname(Product, "warranty") is None


def test_many_to_many_both_directions_and_the_link_table():
    tags = found(Product, "tags")
    assert (tags.kind, tags.model, tags.related_model) == (Kind.MANY_TO_MANY, Product, Tag)
    assert (tags.forward, tags.many, tags.attname) == (True, True, None)
    assert (tags.back, tags.parent_key) == ("products", "id")
    assert model_meta.column_attname(Product, "tags") is None
    products = found(Tag, "products")
    assert (products.kind, products.related_model) == (Kind.REVERSE_MANY_TO_MANY, Product)
    assert (products.forward, products.many, products.back, products.parent_key) == (
        False,
        True,
        "tags",
        "id",
    )
    assert products.declaring_field is tags.field
    through = Product.tags.through
    assert model_meta.link_field(Product, through) is tags.field
    assert found(Gadget, "labels").related_model is Label
    assert found(Label, "parts").back == "labels"


def test_a_reverse_many_to_many_without_related_name_has_its_accessor_and_lookup_name():
    users = found(Group, "user_set")
    assert (users.kind, users.related_model) == (Kind.REVERSE_MANY_TO_MANY, User)
    assert (users.name, users.accessor, users.back) == ("user", "user_set", "groups")
    assert attribute(Group, "user") is None  # the lookup name is no instance attribute


def test_a_reverse_foreign_key():
    reviews = found(Product, "reviews")
    assert reviews.kind is Kind.REVERSE_FOREIGN_KEY
    assert (reviews.model, reviews.related_model) == (Product, Review)
    assert (reviews.name, reviews.accessor, reviews.back, reviews.parent_key) == (
        "reviews",
        "reviews",
        "product",
        "id",
    )
    assert (reviews.forward, reviews.many, reviews.attname) == (False, True, None)
    permissions = found(ContentType, "permission_set")
    assert (permissions.name, permissions.back, permissions.related_model) == (
        "permission",
        "content_type",
        Permission,
    )


def test_the_example_shop_models():
    user = found(shop.Review, "user")
    assert (user.kind, user.related_model, user.back) == (Kind.FOREIGN_KEY, User, "reviews")
    lines = found(shop.Order, "lines")
    assert (lines.kind, lines.related_model, lines.back) == (
        Kind.REVERSE_FOREIGN_KEY,
        shop.OrderLine,
        "order",
    )
    assert found(User, "orders").related_model is shop.Order


def test_columns_and_the_primary_key():
    price = attribute(Product, "price")
    assert isinstance(price, ModelField)
    assert (price.name, price.attname, price.column, price.concrete) == (
        "price",
        "price",
        True,
        True,
    )
    pk = attribute(Product, "pk")
    assert isinstance(pk, ModelField) and pk.name == "id"
    assert relation(Product, "price") is None
    assert model_meta.pk_attname(Event) == "id"
    assert model_meta.concrete_model(Product) is Product


def test_unknown_names_properties_and_methods_are_neither():
    for name in ("nope", "label", "shouting_name", "get_status_display"):
        assert attribute(Product, name) is None
        assert relation(Product, name) is None
        assert model_meta.column_attname(Product, name) is None


def test_walking_a_lookup_path():
    assert walk(Product, "") == ()
    first, second = walk(Product, "category__parent")
    assert (first.model, first.related_model) == (Product, Category)
    assert (second.model, second.related_model) == (Category, Category)
    assert [s.kind for s in walk(Review, "product__tags")] == [
        Kind.FOREIGN_KEY,
        Kind.MANY_TO_MANY,
    ]
    # lookup names, as filter() takes them: a reverse relation by its query name
    [permissions] = walk(ContentType, "permission")
    assert permissions == found(ContentType, "permission_set")
    with pytest.raises(FieldDoesNotExist):
        walk(Product, "category__nope")
    with pytest.raises(ValueError, match="no relation"):
        walk(Product, "brand__name")


def test_the_invalidation_graph_reads_the_last_hop():
    assert Dependency(Product, "").last_hop is None
    assert Dependency(Product, "category__parent").last_hop == found(Category, "parent")
    assert Dependency(Product, "reviews").holds_pointer
    assert not Dependency(Product, "brand").holds_pointer
    assert not Dependency(Product, "tags").holds_pointer


def test_relations_are_resolved_once_per_model():
    assert attribute(Product, "brand") is attribute(Product, "brand")
    assert walk(Product, "category__parent") is walk(Product, "category__parent")


@isolate_apps("tests.testapp")
def test_generic_relations_are_planned_not_compiled():
    class Note(models.Model):
        content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
        object_id = models.PositiveIntegerField()
        target = GenericForeignKey("content_type", "object_id")

        class Meta:
            app_label = "testapp"

    class Page(models.Model):
        notes = GenericRelation(Note)

        class Meta:
            app_label = "testapp"

    target = attribute(Note, "target")
    assert isinstance(target, ModelField)
    assert (target.column, target.concrete) == (False, False)
    assert relation(Note, "target") is None
    assert model_meta.column_attname(Note, "target") is None
    notes = attribute(Page, "notes")
    assert isinstance(notes, Relation)
    assert (notes.kind, notes.related_model, notes.many, notes.plannable) == (
        Kind.GENERIC_RELATION,
        Note,
        True,
        False,
    )
    assert relation(Page, "notes") is None
    [step] = walk(Page, "notes")  # the invalidation graph follows it
    assert step == notes
    assert Dependency(Page, "notes").holds_pointer

    class NoteSerializer(serializers.ModelSerializer):
        target = serializers.CharField()

        class Meta:
            model = Note
            fields = ["id", "target"]

    class PageSerializer(serializers.ModelSerializer):
        notes = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

        class Meta:
            model = Page
            fields = ["id", "notes"]

    # The planner prefetches them (tests/test_planner_shapes.py); the compiler does not read them.
    assert (plan_for(NoteSerializer).prefetch, plan_for(NoteSerializer).unplanned) == (
        ("target",),
        (),
    )
    assert (plan_for(PageSerializer).prefetch, plan_for(PageSerializer).unplanned) == (
        ("notes",),
        (),
    )
    assert compile_read_plan(NoteSerializer).fallback_reasons == (
        "NoteSerializer.target: CharField — Note.target is a generic foreign key, which the "
        "compiler cannot join",
    )
    assert compile_read_plan(PageSerializer).fallback_reasons == (
        "PageSerializer.notes: ManyRelatedField — Page.notes is a generic relation, which the "
        "compiler cannot join",
    )
