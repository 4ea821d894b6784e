"""The layers stay honest: what imports what, what a light import loads, and how big the core may grow."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("steering", "plans", "devices", "sim")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside functions, relative imports resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_module_of_the_package_imports_itself_round_a_circle():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(module, path):
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                cycle = path[path.index(other):] + [other] if other in path else path + [other]
                pytest.fail(f"import circle: {' -> '.join(cycle)}")
            if other not in state:
                visit(other, path + [other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_steering_knows_pixels_not_motors_and_nothing_but_tests_uses_sim():
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            roots = {m.split(".")[0] for m in _imports(path)}
            if pkg == "steering":
                assert not roots & {"bluesky", "ophyd", "ophyd_async", "epics", "plans", "devices", "sim"}, path
            if pkg in ("plans", "devices"):
                assert "sim" not in roots, path


@pytest.mark.parametrize("module", ["sim.ioc", "sim.repeater", "plans.progress", "plans.streams", "steering.images"])
def test_light_modules_load_no_torch(module):
    code = (f"import sys, {module}; print(sorted({{m.split('.')[0] for m in sys.modules}} & "
            "{'torch', 'ophyd', 'bluesky', 'tiled'}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    heavy = eval(loaded.stdout)
    assert "torch" not in heavy, heavy
    if module.startswith("sim."):
        assert heavy == [], heavy  # the IOC and the repeater load no Channel Access client either


def test_the_core_stays_small_enough_to_extend():
    from plans.scan import smart_scan
    from steering.sampler import Sampler

    # the code, its own docstring (the settings' documentation, which grows with every setting) aside
    lines = len(inspect.getsourcelines(smart_scan)[0]) - len(smart_scan.__doc__.splitlines())
    assert lines <= 65, f"smart_scan has {lines} lines of code: move what is not the plan's outline out of it"
    lines = len(inspect.getsourcelines(Sampler)[0]) - len(Sampler.__doc__.splitlines())
    assert lines <= 320, f"Sampler has {lines} lines of code: move what is not sampling state out of it"
