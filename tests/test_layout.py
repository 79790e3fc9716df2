"""The package's layout: imports between stvup's modules run one way, and no subpackage hides a public name."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import stvup

ROOT = Path(stvup.__file__).parent


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of stvup by dotted name: its file, and whether it is a package's ``__init__``."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return found


def _imports(name: str, path: Path, is_pkg: bool, known: set[str]) -> set[str]:
    """The stvup modules ``name`` imports anywhere in its file (function-local ones too), but not those imported
    only for type checkers (``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for s in ast.walk(tree) if isinstance(s, ast.If) and "TYPE_CHECKING" in ast.unparse(s.test)
            for n in ast.walk(s)}  # fmt: skip
    package = name.split(".") if is_pkg else name.split(".")[:-1]
    targets = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets.add(module)
            targets.update(f"{module}.{a.name}" for a in node.names)
    return {t for t in targets if t in known and t != name}


def test_no_import_circle():
    modules = _modules()
    graph = {name: _imports(name, path, is_pkg, set(modules)) for name, (path, is_pkg) in modules.items()}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError("import circle: " + " -> ".join([*trail[trail.index(name) :], name]))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_public_names_survive_every_import():
    """A subpackage named like a public function (``stvup/upscale/``) would replace ``stvup.upscale`` once imported."""
    for info in pkgutil.walk_packages(stvup.__path__, "stvup."):
        if info.name != "stvup.__main__":
            importlib.import_module(info.name)
    for name, module in stvup._EXPORTS.items():
        value = getattr(stvup, name)
        assert not isinstance(value, type(stvup)), f"stvup.{name} is a module"
        assert value is getattr(importlib.import_module(f"stvup.{module}"), name)


def test_no_function_outside_the_click_layer_is_over_120_lines():
    """Long functions hide what they do; the Click commands (stvup/cli) are option lists and may run longer."""
    package = Path(stvup.__file__).parent
    long = []
    for path in package.rglob("*.py"):
        if path.relative_to(package).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 120:
                long.append(f"{path.relative_to(package)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long
