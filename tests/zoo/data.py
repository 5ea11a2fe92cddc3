"""The zoo's rows: testapp devices (ordered through foreign keys) with remarks on them and on
their makers, fastapp devices (custom columns, files) with grants to a plain user."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from tests.fastapp.data import make_devices as make_gadgetry
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
    gadgetry = make_gadgetry(count)
    for index, device in enumerate(gadgetry):
        if index % 3 == 0:
            Grant.objects.create(user=user, device=device)
    labels = list(Label.objects.order_by("pk"))
    for index in range(count):  # custom fields naming a label and devices, or not
        data = {"note": f"n{index}", "label": labels[index % 3].pk if index % 2 else None}
        if index % 3:
            data["devices"] = [device.pk for device in gadgetry[index % 4 : index % 4 + 2]]
        Gadget.objects.create(name=f"custom {index}", data=data)
    return Zoo(staff=staff, user=user)
