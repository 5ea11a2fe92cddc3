"""Rows for the test catalog: every relation filled, some optional ones left empty."""

from decimal import Decimal

from tests.testapp.models import Brand, Category, Customer, Product, Review, Tag, Warranty


def make_catalog(products: int) -> None:
    """Add ``products`` products with tags, up to three reviews, every other one a warranty."""
    start = Product.objects.count()
    root, _ = Category.objects.get_or_create(name="root", parent=None)
    middle, _ = Category.objects.get_or_create(name="middle", parent=root)
    leaf, _ = Category.objects.get_or_create(name="leaf", parent=middle)
    categories = [root, middle, leaf]
    brands = [Brand.objects.get_or_create(name=f"brand {i}", country=f"c{i}")[0] for i in range(2)]
    tags = [Tag.objects.get_or_create(name=f"tag {i}")[0] for i in range(3)]
    customers = [Customer.objects.get_or_create(name=f"customer {i}")[0] for i in range(3)]
    for i in range(start, start + products):
        product = Product.objects.create(
            name=f"product {i}",
            price=Decimal(i) + Decimal("0.99"),
            status=Product.Status.ACTIVE if i % 3 else Product.Status.ARCHIVED,
            brand=brands[i % 2],
            category=categories[i % 3],
        )
        product.tags.set(tags[: 1 + i % 3])
        if i % 2:
            Warranty.objects.create(product=product, years=1 + i % 3)
        for n in range((i + 2) % 4):
            Review.objects.create(
                product=product, customer=customers[n], rating=1 + (i + n) % 5, title=f"r{n}"
            )
