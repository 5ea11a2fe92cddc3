"""The declared public API: each module's `__all__`, one definition per name, the README table."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import drf_scale

README = Path(__file__).resolve().parent.parent / "README.md"


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def modules() -> list[ModuleType]:
    found = [drf_scale]
    for info in pkgutil.walk_packages(drf_scale.__path__, "drf_scale."):
        if not info.name.rpartition(".")[2].startswith("_"):
            found.append(importlib.import_module(info.name))
    return found


def exports() -> dict[str, list[str]]:
    return {module.__name__: list(module.__all__) for module in modules()}


def defined_names(module_name: str) -> set[str]:
    """The names a module binds itself at top level (def, class, assignment), not by import."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_every_module_declares_its_public_names():
    for module in modules():
        assert hasattr(module, "__all__"), module.__name__
        names = module.__all__
        assert len(names) == len(set(names)), module.__name__
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.{name}"
            assert _is_dunder(name) or not name.startswith("_"), f"{module.__name__}.{name}"


def test_every_public_name_is_defined_once():
    by_name: dict[str, dict[str, object]] = {}
    for module in modules():
        for name in module.__all__:
            if not _is_dunder(name):
                by_name.setdefault(name, {})[module.__name__] = getattr(module, name)
    for name, holders in by_name.items():
        objects = list(holders.values())
        assert all(obj is objects[0] for obj in objects), (
            f"{name}: different objects in {sorted(holders)}"
        )
        definers = [module for module in holders if name in defined_names(module)]
        assert len(definers) == 1, f"{name}: defined in {definers}, exported by {sorted(holders)}"
        home = getattr(objects[0], "__module__", None)
        if home is not None and home.startswith("drf_scale"):
            assert home == definers[0], f"{name}: __module__ {home}, defined in {definers[0]}"


def readme_table() -> set[tuple[str, str]]:
    text = README.read_text()
    section = text.split("## Public API", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([\w.]+)` \| `(\w+)` \|", section, flags=re.MULTILINE)
    assert len(rows) == len(set(rows))
    return set(rows)


def test_readme_lists_exactly_the_public_api():
    declared = {(module, name) for module, names in exports().items() for name in names}
    assert readme_table() == declared
