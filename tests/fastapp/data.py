"""Rows for the compiled read plan tests, with nulls and every relation populated or not."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID

from tests.fastapp.models import Country, Device, Gadget, Label, Maker, Part, Spec


def make_gadgets(count: int = 6) -> list[Gadget]:
    """``count`` gadgets; every other one has nulls, no maker, no spec and no parts."""
    country = Country.objects.create(code="FR")
    makers = [Maker.objects.create(name="Acme", country=country), Maker.objects.create(name="Bo")]
    labels = [Label.objects.create(slug=slug) for slug in ("alpha", "beta", "gamma")]
    gadgets = []
    for i in range(count):
        full = i % 2 == 0
        gadget = Gadget.objects.create(
            name=f"Gadget {i}",
            notes="naïve \u2028 notes" if full else "",
            size=Gadget.Size.LARGE if full else Gadget.Size.SMALL,
            rank=i if full else None,
            big=2**40 + i,
            small=i if full else None,
            weight=1.5 * i if full else None,
            price=Decimal("12.345") + i if full else None,
            active=full,
            flag=None if i % 3 == 0 else full,
            released=date(2026, 1, 1 + i) if full else None,
            seen_at=datetime(2026, 1, 1, 23, 30, 0, 123456 * full, tzinfo=UTC) if full else None,
            opens=time(9, i, 30, 500) if full else None,
            lasts=timedelta(hours=i, microseconds=7) if full else None,
            uid=UUID(int=i + 1),
            data={"i": i, "tags": ["x", None], "ok": True} if full else None,
            email=f"g{i}@example.com",
            site="https://example.com/",
            ip="10.0.0.1" if full else None,
            maker=makers[i % 4 // 2] if full else None,
        )
        gadget.labels.set(labels[: i % 4])
        if full:
            Spec.objects.create(gadget=gadget, summary=f"spec {i}")
            for position in range(3):
                name = f"p{i}.{position}"
                part = Part.objects.create(gadget=gadget, name=name, position=-position)
                part.labels.set(labels[position:])
        gadgets.append(gadget)
    return gadgets


def make_devices(count: int = 6) -> list[Device]:
    """``count`` devices: custom columns, files, links to gadgets and labels, or none."""
    gadgets = [Gadget.objects.create(name=name) for name in ("Gadget 0", "ça va")]
    labels = [Label.objects.create(slug=slug) for slug in ("alpha", "ça-va", "b c")]
    devices = []
    for i in range(count):
        full = i % 2 == 0
        device = Device.objects.create(
            name=f"Device {i}",
            mac=f"aa-bb-cc-dd-{0xEE + i // 256:02x}-{i % 256:02x}" if full else None,
            cents=i * 100 - 150 if full else None,
            manual=f"manuals/naïve guide {i}.pdf" if full else ("" if i % 3 else None),
            photo="photos/p ø.png" if i % 3 == 0 else "",
            gadget=gadgets[i % 4 // 2] if full else None,
        )
        device.labels.set(labels[: i % 4])
        devices.append(device)
    return devices
