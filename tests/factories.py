"""A small, deterministic catalog for tests."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model

from shop.models import Brand, Category, Order, OrderLine, Product, Review, Tag

BASE_TIME = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def make_user(username: str, *, staff: bool = False):
    return get_user_model().objects.create_user(username=username, password="pw", is_staff=staff)


def make_catalog(products: int = 12, *, reviews_per_product: int = 3, stock: int = 10) -> dict:
    """Brands, a two-level category tree, tags, products, reviews and an order."""
    brands = [Brand.objects.create(name=f"Brand {i}") for i in range(3)]
    root = Category.objects.create(name="Root")
    categories = [
        root,
        *(Category.objects.create(name=f"Child {i}", parent=root) for i in range(2)),
    ]
    tags = [Tag.objects.create(name=f"tag-{i}") for i in range(4)]
    users = [make_user(f"user{i}") for i in range(max(reviews_per_product, 1))]
    items = []
    for i in range(products):
        product = Product.objects.create(
            sku=f"SKU-{i:04d}",
            name=f"Product {i}",
            description=f"Description of product {i}.",
            price=Decimal("9.99") + i,
            stock=stock,
            brand=brands[i % len(brands)],
            category=categories[i % len(categories)],
        )
        # Distinct creation times with microseconds, some equal to test tie-breaks.
        Product.objects.filter(pk=product.pk).update(
            created_at=BASE_TIME + timedelta(minutes=i // 2), updated_at=BASE_TIME
        )
        product.tags.set(tags[: i % (len(tags) + 1)])
        for j in range(i % (reviews_per_product + 1)):
            Review.objects.create(
                product=product, user=users[j], rating=1 + (i + j) % 5, title=f"T{i}.{j}"
            )
        items.append(product)
    order = Order.objects.create(user=users[0])
    OrderLine.objects.create(order=order, product=items[0], quantity=2, unit_price=items[0].price)
    return {
        "brands": brands,
        "categories": categories,
        "tags": tags,
        "users": users,
        "products": items,
    }
