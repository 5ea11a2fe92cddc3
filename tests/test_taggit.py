"""django-taggit's TaggableManager: a many-to-many field that is not Django's ManyToManyField.

NetBox renders tags on most of its models; the planner classed the field as a foreign key
(it reports ``concrete``) and ``select_related("tags")`` raised FieldError.
"""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from drf_scale.fast import compile_read_plan
from drf_scale.model_meta import Kind, relation
from drf_scale.planner import optimize, plan_for
from tests.taggedapp.models import Article

pytestmark = pytest.mark.django_db


class ArticleSerializer(serializers.ModelSerializer):
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = Article
        fields = ["id", "title", "tags"]


def make_articles(count: int) -> None:
    for i in range(count):
        Article.objects.create(title=f"A{i}").tags.add(*[f"t{j}" for j in range(i % 3)])


def render(queryset) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as queries:
        data = ArticleSerializer(queryset, many=True).data
    return normalized(data), len(queries)


def normalized(data) -> str:
    """The JSON with each row's tags sorted: taggit's tags have no order (PostgreSQL returns
    them in any), so DRF's own order differs between two queries."""
    return json.dumps([{**row, "tags": sorted(row["tags"])} for row in data])


def test_a_taggable_manager_is_a_many_to_many_relation():
    found = relation(Article, "tags")
    assert found is not None and found.kind is Kind.MANY_TO_MANY
    assert plan_for(ArticleSerializer).select_related == ()
    assert "tags" in plan_for(ArticleSerializer).prefetch


@pytest.mark.parametrize("rows", [2, 9])
def test_tagged_rows_render_as_drf_in_constant_queries(rows):
    make_articles(rows)
    expected, naive = render(Article.objects.all())
    planned, queries = render(optimize(Article.objects.all(), ArticleSerializer))
    assert planned == expected
    assert (naive, queries) == (1 + rows, 2)
    plan = compile_read_plan(ArticleSerializer)
    assert plan.fallback_reasons == ()
    assert normalized(plan.execute(Article.objects.all())) == expected
