"""Check the API reference: every public function and class has a docstring and a page.

    python docs/check_api.py [docs/_build/html/objects.inv]

Imports every module of ``steering`` (``steering.tools`` included), ``plans``, ``devices`` and ``sim``
and lists each public function and class defined there (no leading underscore, ``__module__`` the
module itself), and each name a package exports in its ``__all__``. It fails (exit 1), listing them,
if one has no docstring of its own or is missing from the built reference: the Sphinx inventory
``objects.inv`` that ``sphinx-build -b html`` writes. Without an inventory it checks docstrings only.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

PACKAGES = ("steering", "plans", "devices", "sim")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INVENTORY = ROOT / "docs" / "_build" / "html" / "objects.inv"


def modules() -> list:
    """Every module of the four packages, imported, packages first."""
    found = []
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        found.append(pkg)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
            found.append(importlib.import_module(info.name))
    return found


def public_names(mods) -> dict[str, object]:
    """``{"module.Name": object}`` for every public function and class defined in ``mods``, and each
    package export (``__all__``, constants too) under the name of the module that defines it."""
    names = {}
    for mod in mods:
        for name, obj in vars(mod).items():
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) == mod.__name__:
                names[f"{mod.__name__}.{name}"] = obj
        if mod.__name__ in PACKAGES:
            for name in getattr(mod, "__all__", ()):
                if name.startswith("__"):
                    continue
                obj = getattr(mod, name)
                if inspect.isfunction(obj) or inspect.isclass(obj):
                    names[f"{obj.__module__}.{obj.__qualname__}"] = obj
                else:  # a constant: named after the module whose __all__ holds it
                    home = next(m.__name__ for m in mods if m is not mod and name in getattr(m, "__all__", ())
                                and vars(m).get(name) is obj)
                    names[f"{home}.{name}"] = obj
    return names


def own_doc(obj) -> str:
    """The object's own docstring (a class's ``__doc__`` is not inherited; a constant's is checked
    in the reference, where its docstring puts it)."""
    if inspect.isclass(obj):
        return obj.__dict__.get("__doc__") or ""
    if inspect.isfunction(obj):
        return obj.__doc__ or ""
    return "constant"


def documented(inventory: Path) -> set[str]:
    """The names of the Python objects in a Sphinx ``objects.inv``."""
    from sphinx.util.inventory import InventoryFile

    with open(inventory, "rb") as f:
        inv = InventoryFile.load(f, "", lambda base, uri: uri)
    items = inv.data if hasattr(inv, "data") else inv  # Sphinx >= 8.2 returns an _Inventory
    return {name for kind, entries in items.items() if kind.startswith("py:") for name in entries}


def main(argv=None) -> int:
    """Check docstrings and the inventory; print what is missing; 0 if nothing is."""
    argv = sys.argv[1:] if argv is None else argv
    inventory = Path(argv[0]) if argv else DEFAULT_INVENTORY
    sys.path.insert(0, str(ROOT))
    mods = modules()
    names = public_names(mods)
    problems = [f"no docstring: {name}" for name, obj in sorted(names.items()) if not own_doc(obj).strip()]
    if inventory.exists():
        built = documented(inventory)
        problems += [f"not in the reference: {name}" for name in sorted(names) if name not in built]
        where = f"the reference ({inventory})"
    else:
        print(f"no inventory at {inventory}: checking docstrings only (build the docs first)")
        where = "docstrings only"
    for line in problems:
        print(line)
    print(f"{len(mods)} modules, {len(names)} public functions, classes and exported constants; "
          f"{len(problems)} problems ({where})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
