"""The zoo's rows: testapp devices (ordered through foreign keys) with remarks on them and on
their makers, fastapp devices (custom columns, files) with grants to a plain user."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from tests.fastapp.models import Device as Gadgetry
from tests.fastapp.models import Gadget, Grant, Label
from tests.testapp.models import Device, Maker, Remark, Series

# Names sort unlike the ids, so ordering by a key column and by the related name differ.
MAKERS = ["mu", "alpha", "zeta", "kappa", "beta"]


@dataclass
class Zoo:
    staff: AbstractBaseUser
    user: AbstractBaseUser


def make_zoo(count: int = 12) -> Zoo:
    """``count`` rows of each model the shapes list, two users: one staff, one plain."""
    users = get_user_model().objects
    staff = users.create_user(username="zoo-staff", password="pw", is_staff=True)
    user = users.create_user(username="zoo-user", password="pw")
    makers = [Maker.objects.create(name=name) for name in MAKERS]
    series = [
        Series.objects.create(name=name, maker=maker) for maker in makers for name in ("y", "x")
    ]
    for index in range(count):
        device = Device.objects.create(
            name=f"d{index:03d}", maker=makers[index * 7 % 5], series=series[index * 3 % 10]
        )
        for remark in range(index % 3):  # 0, 1 or 2 remarks per device
            Remark.objects.create(content_object=device, body=f"{device.name} #{remark}")
        if index % 4 == 0:
            Remark.objects.create(content_object=device.maker, body=f"maker {index}")
    for index, gadgetry in enumerate(make_gadgetry(count)):
        if index % 3 == 0:
            Grant.objects.create(user=user, device=gadgetry)
    return Zoo(staff=staff, user=user)


def make_gadgetry(count: int) -> list[Gadgetry]:
    """fastapp's devices as ``tests.fastapp.data.make_devices`` makes them (custom columns,
    files, links to gadgets and labels, or none), with MAC addresses for any ``count``."""
    gadgets = [Gadget.objects.create(name=name) for name in ("Gadget 0", "ça va")]
    labels = [Label.objects.create(slug=slug) for slug in ("alpha", "ça-va", "b c")]
    devices = []
    for i in range(count):
        full = i % 2 == 0
        device = Gadgetry.objects.create(
            name=f"Device {i}",
            mac=f"aa-bb-cc-dd-{i // 256:02x}-{i % 256:02x}" if full else None,
            cents=i * 100 - 150 if full else None,
            manual=f"manuals/naïve guide {i}.pdf" if full else ("" if i % 3 else None),
            photo="photos/p ø.png" if i % 3 == 0 else "",
            gadget=gadgets[i % 4 // 2] if full else None,
        )
        device.labels.set(labels[: i % 4])
        devices.append(device)
    return devices
