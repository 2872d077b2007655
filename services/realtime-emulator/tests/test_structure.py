"""The emulator's modules import one another without loops, so each part can be read (and
replaced) on its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "opencouch" / "realtime_emulator"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(part for part in parts if part != "__init__") or "__init__"


def local_imports(path: Path) -> set[str]:
    """Modules of this package that ``path`` imports, for type checking too (a loop through
    ``TYPE_CHECKING`` still ties two parts together)."""
    package = list(path.relative_to(PACKAGE).parent.parts)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            names = [node.module] if node.module else [alias.name for alias in node.names]
            found.update(".".join([*base, name]) for name in names)
    return found


def test_no_import_loops() -> None:
    graph = {module_name(path): local_imports(path) for path in PACKAGE.rglob("*.py")}
    assert "calls" in graph
    assert "responses" in graph

    def loop_from(start: str, node: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for target in graph.get(node, set()):
            if target == start:
                return (*seen, target)
            if target not in seen:
                found = loop_from(start, target, (*seen, target))
                if found:
                    return found
        return None

    loops = [loop for name in graph if (loop := loop_from(name, name, (name,)))]
    assert loops == []


# Issue 13 asked for parts of "about 300 lines" at most; a little slack, no second Call.
MAX_LINES = 330


def test_no_module_grows_much_past_300_lines() -> None:
    lengths = {
        module_name(path): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")
    }
    assert lengths["calls"] > 100, "calls.py is the call's core: measured, not skipped"
    too_long = {name: lines for name, lines in lengths.items() if lines > MAX_LINES}
    assert too_long == {}, f"split these into parts with narrow interfaces: {too_long}"
