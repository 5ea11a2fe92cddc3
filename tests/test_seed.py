"""``manage.py seed``: proportions, determinism, the safety flags, usable sequences.

The same tests run on SQLite (batched INSERTs) and PostgreSQL (COPY).
"""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Count, F, Max, Min
from django.utils import timezone
from rest_framework.authtoken.models import Token

from shop.models import Brand, Category, Order, OrderLine, Product, Review, Tag

pytestmark = pytest.mark.django_db
User = get_user_model()
N = 200
PRODUCT_FIELDS = ["id", "sku", "name", "description", "price", "stock", "status", "brand",
                  "category", "created_at", "updated_at"]  # fmt: skip


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed", "--products", str(N), *args, stdout=out, verbosity=0)
    return out.getvalue()


@pytest.fixture
def seeded() -> str:
    return seed()


def snapshot() -> dict[str, list]:
    """Everything the seed wrote, ids included, in a comparable form."""
    return {
        "users": list(
            User.objects.filter(is_staff=False)
            .order_by("id")
            .values_list("id", "username", "first_name", "last_name", "date_joined")
        ),
        "brands": list(Brand.objects.order_by("id").values_list("id", "name")),
        "categories": list(Category.objects.order_by("id").values_list("id", "name", "parent")),
        "tags": list(Tag.objects.order_by("id").values_list("id", "name")),
        "products": list(Product.objects.order_by("id").values_list(*PRODUCT_FIELDS)),
        "product_tags": list(
            Product.tags.through.objects.order_by("id").values_list("id", "product", "tag")
        ),
        "reviews": list(
            Review.objects.order_by("id").values_list(
                "id", "product", "user__username", "rating", "title", "body", "created_at"
            )
        ),
        "orders": list(Order.objects.order_by("id").values_list("id", "user", "created_at")),
        "lines": list(
            OrderLine.objects.order_by("id").values_list(
                "id", "order", "product", "quantity", "unit_price"
            )
        ),
    }


def test_counts_and_shape(seeded):
    assert "Superuser 'admin'" in seeded
    assert Product.objects.count() == N
    assert Brand.objects.count() == 5
    assert Tag.objects.count() == 100
    assert User.objects.filter(is_staff=False).count() == 20
    assert Order.objects.count() == N // 4

    roots = Category.objects.filter(parent=None)
    assert roots.count() == 20
    assert not Category.objects.filter(parent__parent__isnull=False).exists()  # two levels
    assert Category.objects.filter(parent__isnull=False).count() == 20
    # Products sit in leaf categories.
    assert not Product.objects.filter(category__parent=None).exists()

    stats = Product.objects.aggregate(
        low=Min("price"), high=Max("price"), stock_low=Min("stock"), stock_high=Max("stock")
    )
    assert stats["low"] > Decimal("0") and stats["high"] <= Decimal("2001")
    assert stats["stock_low"] >= 0 and stats["stock_high"] <= 500
    assert Product.objects.filter(status=Product.Status.ACTIVE).count() > N * 0.7
    assert Product.objects.exclude(status=Product.Status.ACTIVE).exists()
    assert Product.objects.filter(sku="SKU-00000001").exists()
    for created, updated in Product.objects.values_list("created_at", "updated_at"):
        assert created.microsecond == 0 and updated.microsecond == 0
        assert created <= updated

    tags_per_product = Product.objects.annotate(n=Count("tags")).aggregate(Max("n"))
    assert tags_per_product["n__max"] <= 5
    assert Product.tags.through.objects.count() > N


def test_reviews(seeded):
    per_product = Product.objects.annotate(n=Count("reviews"))
    assert per_product.aggregate(Max("n"))["n__max"] <= 6
    assert 1 <= Review.objects.count() / N <= 3
    # One review per (product, user); no review predates its product.
    assert not Review.objects.values("product", "user").annotate(n=Count("id")).filter(n__gt=1)
    assert not Review.objects.filter(created_at__lt=F("product__created_at")).exists()
    assert not Review.objects.filter(product__status=Product.Status.DRAFT).exists()
    assert set(Review.objects.values_list("rating", flat=True)) <= {1, 2, 3, 4, 5}


def test_orders(seeded):
    lines = Order.objects.annotate(n=Count("lines")).aggregate(low=Min("n"), high=Max("n"))
    assert lines["low"] >= 1 and lines["high"] <= 4
    assert not OrderLine.objects.exclude(product__in=Product.objects.all()).exists()
    assert not OrderLine.objects.exclude(unit_price=F("product__price")).exists()
    assert not OrderLine.objects.filter(product__created_at__gt=F("order__created_at")).exists()
    now = timezone.now()
    assert Order.objects.filter(created_at__gte=now - timedelta(days=30)).count() >= N // 20
    assert not Order.objects.filter(created_at__lt=now - timedelta(days=367)).exists()
    connection.check_constraints()  # every foreign key points at a row


def test_users_share_one_password_hash(seeded):
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser and admin.check_password("admin")
    shoppers = User.objects.filter(is_staff=False)
    assert shoppers.values("password").distinct().count() == 1
    assert shoppers.first().check_password("password")


def test_same_seed_same_data():
    seed("--anchor", "2026-01-01")
    first = snapshot()
    seed("--reset", "--anchor", "2026-01-01")
    assert snapshot() == first
    seed("--reset", "--anchor", "2026-01-01", "--seed", "2")
    assert snapshot()["products"] != first["products"]


def test_if_empty_leaves_data_alone(seeded):
    before = snapshot()
    out = StringIO()
    call_command("seed", "--products", "50", "--if-empty", stdout=out, verbosity=0)
    assert "nothing seeded" in out.getvalue()
    assert snapshot() == before


def test_refuses_to_seed_over_data(seeded):
    with pytest.raises(CommandError, match="--reset"):
        seed()


def test_reset_deletes_seeded_users_and_what_hangs_off_them(seeded):
    staff = User.objects.create_user("ops", is_staff=True)
    Token.objects.create(user=User.objects.get(username="shopper0000001"))
    seed("--reset")
    assert User.objects.filter(pk=staff.pk).exists()
    assert User.objects.filter(username="admin").count() == 1
    assert User.objects.filter(is_staff=False).count() == 20
    assert not Token.objects.exists()
    assert Product.objects.count() == N


def test_orm_inserts_after_seeding(seeded):
    """The id sequences were moved past the explicit ids (PostgreSQL)."""
    product = Product.objects.create(
        sku="NEW-1",
        name="New",
        price=Decimal("9.99"),
        brand=Brand.objects.create(name="Brand new"),
        category=Category.objects.create(name="New category"),
    )
    assert product.pk == N + 1
    product.tags.add(Tag.objects.create(name="brand-new"))
    user = User.objects.create_user("newcomer")
    Review.objects.create(product=product, user=user, rating=5, title="First")
    order = Order.objects.create(user=user)
    OrderLine.objects.create(order=order, product=product, quantity=1, unit_price=product.price)
    assert order.pk == N // 4 + 1
