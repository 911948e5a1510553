"""The package's imports run one way: down the layers stated in docs/ARCHITECTURE.md, with no cycle.

An AST walk of every module's imports (at any depth: a function-level import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lcm_video"

LAYERS: list[tuple[str, ...]] = [
    ("errors", "choices", "events", "notices", "files"),
    ("options", "toy", "keyframes"),
    ("core",),
    ("temporal", "control"),
    ("models",),
    ("video",),
    ("record",),
    ("settings",),
    ("metrics",),
    ("pipelines",),
    ("train", "batch", "live"),
    ("cli", "ui"),
    ("__init__", "__main__"),
]
"""Bottom to top, as ARCHITECTURE.md's "Layers" section states them: a module imports from its own layer or below."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def imports(path: Path) -> set[str]:
    """The package modules ``path`` imports (relative to ``lcm_video``), from every import statement in the file."""
    name = module_name(path)
    package = "" if name == "__init__" else name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and node.module.startswith("lcm_video"):
                target = node.module.removeprefix("lcm_video").lstrip(".")
            else:
                continue
            for alias in node.names:  # `from . import x` imports the submodule x
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if (PACKAGE / sub.replace(".", "/")).with_suffix(".py").exists() else target)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("lcm_video.") for a in node.names if a.name.startswith("lcm_video.")}
    return {f for f in found if f and f != name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    top = module.split(".")[0]
    for k, names in enumerate(LAYERS):
        if top in names:
            return k
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to ARCHITECTURE.md")


def test_no_module_imports_from_a_higher_layer():
    upward = [
        f"{m} ({layer(m)}) -> {d} ({layer(d)})" for m, deps in graph().items() for d in deps if layer(d) > layer(m)
    ]
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def test_the_imports_have_no_cycle():
    g = graph()
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g.get(m, ())):
            if d.rpartition(".")[0] == m or m == "":  # a package importing its own submodule is not a cycle
                continue
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d in g and not state.get(d) and (cycle := visit(d)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in g:
        if not state.get(m) and (cycle := visit(m)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_every_import_names_a_module_that_exists():
    g = graph()
    missing = [f"{m} -> {d}" for m, deps in g.items() for d in deps if d not in g]
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def test_the_walk_sees_relative_and_absolute_imports():
    g = graph()
    assert "errors" in g["options"]  # `from .errors import UserError`
    assert any(d.startswith("core.") for d in g["pipelines.window"])  # `from ..core.sampler import sample`


def test_no_module_is_over_500_lines():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules over 500 lines: {long}"


def test_architecture_states_the_layers():
    text = (PACKAGE.parent / "docs" / "ARCHITECTURE.md").read_text()
    for names in LAYERS[:-1]:
        assert " ".join(f"`{n}`" for n in names) in text, f"ARCHITECTURE.md does not list the layer {names}"
