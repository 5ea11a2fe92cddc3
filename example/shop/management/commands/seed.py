"""``manage.py seed --products N``: fill the shop with a realistic catalog, fast and repeatably.

Each table has one generator that yields its rows as tuples, and ``write_rows`` streams them
into the database: COPY on PostgreSQL, batched INSERTs elsewhere. Nothing holds a table in
memory: what later tables need to know about a product or an order (price, status, creation
time) is a pure function of (seed, id). Rows are written directly, so ``auto_now`` and
``auto_now_add`` keep the timestamps given here, and ids are explicit.

The same ``--seed``, ``--products`` and ``--anchor`` give the same rows (the shared password
hash aside, whose salt is random).
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connection, models, transaction
from tqdm import tqdm

from drf_scale.cache import invalidate_model
from shop.models import Brand, Category, Order, OrderLine, Product, Review, Tag

User = get_user_model()
ProductTag = Product.tags.through

# Children before parents: the order to empty the tables in.
SHOP_MODELS: list[type[models.Model]] = [
    OrderLine,
    Order,
    Review,
    ProductTag,
    Product,
    Tag,
    Category,
    Brand,
]
USERNAME_PREFIX = "shopper"
USER_PASSWORD = "password"
BATCH_SIZE = 2000  # rows per executemany, and per progress update under COPY
DAY = 86_400
SPAN = 730 * DAY  # products appear over the last two years; the data starts there


def _words(text: str) -> list[str]:
    return text.split()


FIRST = _words("""
    Ada Ben Chloe Dev Elena Farid Grace Hugo Ines Jun Kofi Lena Mateo Nora Omar Priya Quinn Rosa
    Sven Tara Uma Viktor Wen Ximena Yusuf Zoe
""")
LAST = _words("""
    Abe Berg Costa Dubois Eze Fischer Garcia Haddad Ivanova Jensen Kim Lopez Moreau Nakamura
    Okafor Petrov Rossi Silva Tanaka Uddin Novak Weber Young Zhang
""")
BRAND_HEADS = _words("""
    Acme Aero Alto Apex Arbor Astra Bold Bright Cedar Cobalt Core Crest Delta Echo Ember Fable
    Flux Forge Glen Halo Harbor Iron Juniper Kite Lumen Maple Meridian Nimbus Nord Oak Onyx
    Orbit Pine Pixel Quartz Raven Ridge Sable Sol Summit Terra Tidal Umber Vale Vertex Willow
    Zenith Zephyr
""")
BRAND_TAILS = [
    "",
    *_words("""
        works craft line lab wear home tech gear field stone wave light point form ware made co
        ly io ify hub nest path peak port side smith spring star ton way wood worx zone mark
        crest bay dale ridge vale well
    """),
]
ROOT_CATEGORIES = _words("""
    Electronics Computers Home Kitchen Garden Tools Toys Books Music Sports Outdoors Fashion
    Shoes Beauty Health Grocery Pets Baby Automotive Office
""")
SUBCATEGORIES = _words("""
    Accessories Essentials Basics Premium Kids Travel Storage Parts Sets Deals Classics Gifts
    Care Lighting Cleaning Decor Supplies Furniture Wearables Audio Bags Tech Eco Vintage Pro
""")
TAG_HEADS = _words("""
    eco budget premium handmade vegan organic wireless compact vintage smart durable portable
    waterproof limited new bestseller gift kids travel outdoor
""")
TAG_TAILS = [
    "",
    *_words("""
        -pick -choice -deal -edition -friendly -ready -approved -favorite -essential -series
        -line -collection -special -classic
    """),
]
ADJECTIVES = _words("""
    Rugged Sleek Compact Classic Modern Ergonomic Lightweight Deluxe Essential Smart Vintage
    Portable Heavy-Duty Minimal Premium Handcrafted Foldable Wireless Insulated Adjustable
""")
MATERIALS = _words("""
    Steel Oak Bamboo Cotton Leather Ceramic Glass Aluminium Wool Linen Copper Silicone Carbon
    Walnut Granite Canvas
""")
NOUNS = _words("""
    Lamp Chair Backpack Kettle Headphones Mug Jacket Speaker Watch Desk Bottle Blender Tent
    Keyboard Notebook Pan Sneakers Drone Router Blanket Skillet Helmet Charger Planter Wallet
    Camera Scarf Monitor Toolkit Puzzle
""")
PITCHES = [
    "Built to last and easy to care for.",
    "Ships in recyclable packaging.",
    "Backed by a two-year warranty.",
    "A customer favourite since its launch.",
    "Designed in-house and tested for everyday use.",
    "Pairs well with the rest of the collection.",
    "Lighter than it looks.",
]
REVIEW_TITLES = {
    1: ["Disappointed", "Broke after a week", "Not as described"],
    2: ["Meh", "Could be better", "Not worth the price"],
    3: ["It's okay", "Does the job", "Average"],
    4: ["Pretty good", "Happy with it", "Solid choice"],
    5: ["Love it!", "Excellent", "Exactly what I needed", "Five stars"],
}
REVIEW_BODIES = [
    "Arrived quickly and well packed.",
    "Quality is about what I expected.",
    "I use it every day.",
    "The finish could be better.",
    "Bought a second one.",
    "Great value for the money.",
    "My family loves it.",
    "Smaller than it looks in the photos.",
]

TAGS_PER_PRODUCT = [15, 20, 25, 20, 12, 8]  # weights of 0..5 tags: mean ~2.1
REVIEWS_PER_PRODUCT = [25, 20, 17, 13, 10, 8, 7]  # weights of 0..6 reviews: mean ~2.1
LINES_PER_ORDER = [40, 30, 20, 10]  # weights of 1..4 lines
QUANTITIES = [70, 20, 7, 3]  # weights of quantities 1..4
RATINGS = [5, 7, 15, 33, 40]  # weights of ratings 1..5
RECENT_SHARE = 0.4  # share of orders placed in the last 30 days

_MASK = 2**64 - 1


def _unit(seed: int, key: int, salt: int) -> float:
    """A float in [0, 1) that depends only on its arguments (a splitmix64 finaliser)."""
    z = (seed * 0x9E3779B97F4A7C15 + key * 0xBF58476D1CE4E5B9 + salt * 0x94D049BB133111EB) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((z ^ (z >> 31)) >> 11) / 2**53


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _cumulative(weights: Sequence[int]) -> list[int]:
    total, out = 0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def chunked(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to ``size`` consecutive items of ``rows``."""
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


@dataclass(frozen=True)
class Plan:
    """How many rows of each kind ``--products N`` asks for."""

    products: int
    brands: int
    roots: int
    children: int
    tags: int
    users: int
    orders: int

    @classmethod
    def for_products(cls, n: int) -> Plan:
        return cls(
            products=n,
            brands=_clamp(n // 200, 5, 2000),
            roots=len(ROOT_CATEGORIES),
            children=_clamp(n // 500, 20, 500),
            tags=_clamp(100 + n // 5000, 100, 300),
            users=_clamp(n // 10, 20, 100_000),
            orders=max(n // 4, 1),
        )


class Dataset:
    """The rows of every table, generated table by table from ``seed``.

    Times run back from ``anchor``: products over two years, with ids in creation order;
    orders over one year, ``RECENT_SHARE`` of them in the last 30 days.
    """

    def __init__(self, plan: Plan, seed: int, anchor: datetime, first_user_id: int) -> None:
        self.plan = plan
        self.seed = seed
        self.anchor = anchor
        self.first_user_id = first_user_id
        self.start = anchor - timedelta(seconds=SPAN)

    def rng(self, table: str) -> random.Random:
        """An independent, seeded generator per table."""
        return random.Random(f"{self.seed}:{table}")

    # Facts other tables need, computed rather than remembered.

    def product_status(self, pid: int) -> str:
        u = _unit(self.seed, pid, 1)
        if u < 0.88:
            return Product.Status.ACTIVE
        return Product.Status.DRAFT if u < 0.95 else Product.Status.ARCHIVED

    def product_price(self, pid: int) -> Decimal:
        """Log-uniform from 1 to 2,000, mostly ending in .99."""
        dollars = int(math.exp(_unit(self.seed, pid, 2) * math.log(2000))) + 1
        cents = dollars * 100 - (1 if _unit(self.seed, pid, 3) < 0.8 else 0)
        return Decimal(cents).scaleb(-2)

    def product_seconds(self, pid: int) -> int:
        """Seconds after ``start`` at which product ``pid`` was created (grows with the id)."""
        slot = SPAN / self.plan.products
        return int((pid - 1 + _unit(self.seed, pid, 4)) * slot)

    def order_seconds_ago(self, oid: int) -> int:
        """Seconds before ``anchor`` at which order ``oid`` was placed (later ids, later)."""
        q = (oid - 1 + _unit(self.seed, oid, 5)) / self.plan.orders
        older = 1 - RECENT_SHARE
        if q < older:
            return int(365 * DAY - q / older * 335 * DAY)
        return max(1, int(30 * DAY * (1 - (q - older) / RECENT_SHARE)))

    # One generator per table.

    def users(self, password_hash: str) -> Iterator[tuple]:
        rng = self.rng("users")
        for i in range(1, self.plan.users + 1):
            username = f"{USERNAME_PREFIX}{i:07d}"
            joined = self.anchor - timedelta(seconds=rng.randrange(1, 1095 * DAY))
            yield (
                self.first_user_id + i - 1,
                password_hash,
                None,
                False,
                username,
                rng.choice(FIRST),
                rng.choice(LAST),
                f"{username}@example.com",
                False,
                True,
                joined,
            )

    def brands(self) -> Iterator[tuple]:
        names = [head + tail for head in BRAND_HEADS for tail in BRAND_TAILS]
        yield from enumerate(self.rng("brands").sample(names, self.plan.brands), 1)

    def categories(self) -> Iterator[tuple]:
        """``roots`` top-level categories, then ``children`` spread round-robin under them."""
        plan = self.plan
        for rid, name in enumerate(ROOT_CATEGORIES, 1):
            yield rid, name, None
        for i in range(plan.children):
            root = i % plan.roots
            kind = SUBCATEGORIES[(i // plan.roots) % len(SUBCATEGORIES)]
            yield plan.roots + i + 1, f"{ROOT_CATEGORIES[root]} {kind}", root + 1

    def tags(self) -> Iterator[tuple]:
        names = [head + tail for head in TAG_HEADS for tail in TAG_TAILS]
        yield from enumerate(self.rng("tags").sample(names, self.plan.tags), 1)

    def products(self) -> Iterator[tuple]:
        plan, rng = self.plan, self.rng("products")
        first_child, anchor = plan.roots + 1, self.anchor
        for pid in range(1, plan.products + 1):
            adjective = rng.choice(ADJECTIVES)
            material = rng.choice(MATERIALS)
            noun = rng.choice(NOUNS)
            pitch = rng.choice(PITCHES)
            description = f"A {adjective.lower()} {noun.lower()} in {material.lower()}. {pitch}"
            created = self.start + timedelta(seconds=self.product_seconds(pid))
            age = int((anchor - created).total_seconds())
            yield (
                pid,
                f"SKU-{pid:08d}",
                f"{adjective} {material} {noun}",
                description,
                self.product_price(pid),
                rng.randrange(501),
                self.product_status(pid),
                rng.randrange(1, plan.brands + 1),
                rng.randrange(first_child, first_child + plan.children),
                created,
                created + timedelta(seconds=int(age * rng.random() ** 2)),
            )

    def product_tags(self) -> Iterator[tuple]:
        rng, weights = self.rng("product_tags"), _cumulative(TAGS_PER_PRODUCT)
        counts, tag_ids = range(len(weights)), range(1, self.plan.tags + 1)
        row_id = 0
        for pid in range(1, self.plan.products + 1):
            for tid in rng.sample(tag_ids, rng.choices(counts, cum_weights=weights)[0]):
                row_id += 1
                yield row_id, pid, tid

    def reviews(self) -> Iterator[tuple]:
        """0-6 reviews per published product, by distinct users, after it was created."""
        rng, weights = self.rng("reviews"), _cumulative(REVIEWS_PER_PRODUCT)
        ratings, rating_weights = range(1, 6), _cumulative(RATINGS)
        counts = range(len(weights))
        user_ids = range(self.first_user_id, self.first_user_id + self.plan.users)
        row_id = 0
        for pid in range(1, self.plan.products + 1):
            if self.product_status(pid) == Product.Status.DRAFT:
                continue
            created = self.product_seconds(pid)
            for user_id in rng.sample(user_ids, rng.choices(counts, cum_weights=weights)[0]):
                row_id += 1
                rating = rng.choices(ratings, cum_weights=rating_weights)[0]
                yield (
                    row_id,
                    pid,
                    user_id,
                    rating,
                    rng.choice(REVIEW_TITLES[rating]),
                    rng.choice(REVIEW_BODIES),
                    self.start + timedelta(seconds=rng.randrange(created, SPAN)),
                )

    def orders(self) -> Iterator[tuple]:
        rng = self.rng("orders")
        first_user, last_user = self.first_user_id, self.first_user_id + self.plan.users
        for oid in range(1, self.plan.orders + 1):
            placed = self.anchor - timedelta(seconds=self.order_seconds_ago(oid))
            yield oid, rng.randrange(first_user, last_user), placed

    def order_lines(self) -> Iterator[tuple]:
        """1-4 distinct products per order, each published and created before the order."""
        rng, weights = self.rng("order_lines"), _cumulative(LINES_PER_ORDER)
        quantity_weights = _cumulative(QUANTITIES)
        counts, slot = range(1, len(weights) + 1), SPAN / self.plan.products
        row_id = 0
        for oid in range(1, self.plan.orders + 1):
            placed = SPAN - self.order_seconds_ago(oid)
            newest = max(1, min(self.plan.products, int(placed / slot)))
            chosen: set[int] = set()
            for _ in range(rng.choices(counts, cum_weights=weights)[0]):
                for _attempt in range(10):
                    pid = rng.randrange(1, newest + 1)
                    if pid not in chosen and self.product_status(pid) != Product.Status.DRAFT:
                        break
                else:
                    continue
                chosen.add(pid)
                row_id += 1
                quantity = rng.choices(counts, cum_weights=quantity_weights)[0]
                yield row_id, oid, pid, quantity, self.product_price(pid)


def write_rows(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    total: int | None = None,
    progress: bool = True,
) -> int:
    """Insert ``rows`` (values in ``fields`` order) into ``model``'s table; return the count.

    PostgreSQL gets one COPY, fed as the rows come; other databases get batched INSERTs.
    Either way no more than ``BATCH_SIZE`` rows are held at a time.
    """
    opts, qn = model._meta, connection.ops.quote_name
    field_objs = [opts.get_field(name) for name in fields]
    table = qn(opts.db_table)
    columns = ", ".join(qn(field.column) for field in field_objs)
    bar = tqdm(
        desc=f"{opts.db_table:<17}", total=total, unit=" rows", unit_scale=True, file=sys.stderr,
        disable=not progress, dynamic_ncols=True,
    )  # fmt: skip
    written = 0
    with bar, connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for chunk in chunked(rows, BATCH_SIZE):
                    for row in chunk:
                        copy.write_row(row)
                    written += len(chunk)
                    bar.update(len(chunk))
        else:
            marks = ", ".join(["%s"] * len(field_objs))
            sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
            for chunk in chunked(rows, BATCH_SIZE):
                params = [
                    [
                        field.get_db_prep_save(value, connection)
                        for field, value in zip(field_objs, row, strict=True)
                    ]
                    for row in chunk
                ]
                cursor.executemany(sql, params)
                written += len(chunk)
                bar.update(len(chunk))
        bar.total = written  # some totals are estimates
    return written


@contextmanager
def foreign_keys_checked_at_end(tables: Sequence[str]) -> Iterator[None]:
    """On PostgreSQL, drop the foreign keys of ``tables`` and add them back on the way out.

    Adding a key back checks all rows in one join, far cheaper than a trigger per row.
    Elsewhere this does nothing.
    """
    if connection.vendor != "postgresql":
        yield
        return
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        # A table with pending (deferred) trigger events cannot be altered: run them now,
        # and check the deletes that follow as they happen.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype = 'f' AND conrelid = ANY(%s::regclass[]) ORDER BY 1, 2",
            [list(tables)],
        )
        keys = cursor.fetchall()
        for table, name, _ in keys:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {qn(name)}")
    yield
    with connection.cursor() as cursor:
        for table, name, definition in keys:
            cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {qn(name)} {definition}")


def seeded_users() -> models.QuerySet:
    return User.objects.filter(is_staff=False, username__startswith=USERNAME_PREFIX)


def has_data() -> bool:
    shop = (Brand, Category, Tag, Product, Review, Order)
    return any(model.objects.exists() for model in shop) or seeded_users().exists()


def delete_data() -> None:
    """Empty the shop tables (TRUNCATE ... CASCADE on PostgreSQL), then delete the seeded users."""
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            tables = ", ".join(qn(model._meta.db_table) for model in SHOP_MODELS)
            cursor.execute(f"TRUNCATE {tables} CASCADE")
        else:
            for model in SHOP_MODELS:
                cursor.execute(f"DELETE FROM {qn(model._meta.db_table)}")
    # QuerySet.delete() would load every user; delete what cascades from them (tokens,
    # group memberships, ...) with one query per relation, then the users themselves.
    users = seeded_users()
    for rel in User._meta.get_fields(include_hidden=True):
        if isinstance(rel, models.ManyToOneRel) and rel.on_delete is models.CASCADE:
            rel.related_model._base_manager.filter(**{f"{rel.field.name}__in": users}).delete()
    users._raw_delete(users.db)


class Command(BaseCommand):
    help = "Fill the shop with a realistic, deterministic catalog of N products (and more)."

    def add_arguments(self, parser):
        parser.add_argument("--products", type=int, required=True, help="how many products")
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing if the shop already has data"
        )
        parser.add_argument(
            "--reset", action="store_true", help="delete the shop data and seeded users first"
        )
        parser.add_argument(
            "--anchor",
            type=date.fromisoformat,
            default=None,
            help="the day the data ends at, YYYY-MM-DD (default: today, UTC); "
            "fix it to reproduce a dataset exactly",
        )

    def handle(self, *args, products, seed, if_empty, reset, anchor, verbosity, **options):
        if products < 1:
            raise CommandError("--products must be at least 1.")
        if if_empty and reset:
            raise CommandError("--if-empty and --reset contradict each other: pick one.")
        progress = verbosity >= 1
        day = anchor or datetime.now(UTC).date()
        anchor_at = datetime(day.year, day.month, day.day, tzinfo=UTC)
        plan = Plan.for_products(products)
        started = time.monotonic()

        tables = [model._meta.db_table for model in [User, *SHOP_MODELS]]
        with transaction.atomic():
            populated = has_data()
            if populated and if_empty:
                self.stdout.write("The shop already has data: nothing seeded (--if-empty).")
                return
            if populated and not reset:
                raise CommandError(
                    "The shop already has data. Pass --reset to replace it, "
                    "or --if-empty to leave it alone."
                )
            with foreign_keys_checked_at_end(tables):
                if populated:
                    delete_data()
                self.ensure_admin()
                first_user_id = (User.objects.aggregate(top=models.Max("pk"))["top"] or 0) + 1
                data = Dataset(plan, seed, anchor_at, first_user_id)
                counts = self.write_all(data, progress)
            self.reset_sequences()
            # Raw SQL and COPY are invisible to the representation cache: drop what it holds.
            invalidate_model(Product)

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for model in [User, *SHOP_MODELS]:
                    cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
        summary = ", ".join(f"{n:,} {name}" for name, n in counts.items())
        self.stdout.write(f"Seeded {summary} in {time.monotonic() - started:.1f}s.")

    def ensure_admin(self) -> None:
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", "admin")
        self.stdout.write("Superuser 'admin' (password 'admin') exists.")

    def write_all(self, data: Dataset, progress: bool) -> dict[str, int]:
        plan = data.plan
        password_hash = make_password(USER_PASSWORD)  # once: hashing is slow on purpose
        user_fields = ["id", "password", "last_login", "is_superuser", "username", "first_name",
                       "last_name", "email", "is_staff", "is_active", "date_joined"]  # fmt: skip
        product_fields = ["id", "sku", "name", "description", "price", "stock", "status",
                          "brand", "category", "created_at", "updated_at"]  # fmt: skip
        review_fields = ["id", "product", "user", "rating", "title", "body", "created_at"]
        line_fields = ["id", "order", "product", "quantity", "unit_price"]
        tables = [
            ("users", User, user_fields, data.users(password_hash), plan.users),
            ("brands", Brand, ["id", "name"], data.brands(), plan.brands),
            ("categories", Category, ["id", "name", "parent"], data.categories(),
             plan.roots + plan.children),
            ("tags", Tag, ["id", "name"], data.tags(), plan.tags),
            ("products", Product, product_fields, data.products(), plan.products),
            ("product tags", ProductTag, ["id", "product", "tag"], data.product_tags(),
             plan.products * 2),
            ("reviews", Review, review_fields, data.reviews(), plan.products * 2),
            ("orders", Order, ["id", "user", "created_at"], data.orders(), plan.orders),
            ("order lines", OrderLine, line_fields, data.order_lines(), plan.orders * 2),
        ]  # fmt: skip
        return {
            name: write_rows(model, fields, rows, total=total, progress=progress)
            for name, model, fields, rows, total in tables
        }

    def reset_sequences(self) -> None:
        """Point the id sequences past the explicit ids (a no-op on SQLite)."""
        statements = connection.ops.sequence_reset_sql(no_style(), [User, *SHOP_MODELS])
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
