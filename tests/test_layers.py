"""The package's three layers, read from the source (every import, function-level ones included).

* the learner's helpers: the modules at the top of ``gapcourse/`` and the exercise checks (``gapcourse/checks``);
* the studies behind the committed numbers: ``gapcourse/studies``;
* the instructor's tools: ``gapcourse/classroom``.

A learner who opens a helper beside a notebook never meets a study or a classroom tool: no learner module imports
them, and no notebook cell does. The command line (``gapcourse/__main__.py``) is the one module that reaches every
layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

import gapcourse

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gapcourse"
LAB = ("gapcourse.studies", "gapcourse.classroom")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) for every import in ``path``, at any depth, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path)
    package = here if is_package(path) else here.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for a in node.names:
                # `from gapcourse import viz` imports a module, `from gapcourse.viz import show` a name
                if f"{module}.{a.name}" in MODULES:
                    found.append((f"{module}.{a.name}", None, node.lineno))
                else:
                    found.append((module, a.name, node.lineno))
    return found


def layer(module: str) -> str:
    if module == "gapcourse.__main__":
        return "command line"
    for lab in LAB:
        if module == lab or module.startswith(lab + "."):
            return lab
    return "learner"


def test_the_three_layers_are_folders_and_each_holds_its_modules():
    by_layer = {}
    for name in MODULES:
        by_layer.setdefault(layer(name), []).append(name)
    assert {"gapcourse.studies.heads", "gapcourse.studies.ablation", "gapcourse.studies.bench",
            "gapcourse.studies.budget_table", "gapcourse.studies.budget_recipe", "gapcourse.studies.provenance",
            "gapcourse.studies.runlog", "gapcourse.studies.export", "gapcourse.studies.runner",
            "gapcourse.studies.resume"} <= set(by_layer["gapcourse.studies"])
    assert {"gapcourse.classroom.copies", "gapcourse.classroom.grade",
            "gapcourse.classroom.colab"} <= set(by_layer["gapcourse.classroom"])
    assert {"gapcourse.data", "gapcourse.models", "gapcourse.train", "gapcourse.viz", "gapcourse.checks",
            "gapcourse.canvas", "gapcourse.measured"} <= set(by_layer["learner"])


def test_no_learner_module_imports_a_study_or_a_classroom_tool():
    offences = [f"{name} line {line} imports {module}" for name, path in MODULES.items() if layer(name) == "learner"
                for module, _, line in imports(path) if layer(module) in LAB]
    assert not offences, "\n".join(offences)


def test_the_studies_and_the_classroom_do_not_import_each_other():
    offences = [f"{name} line {line} imports {module}" for name, path in MODULES.items()
                for module, _, line in imports(path)
                if layer(name) in LAB and layer(module) in LAB and layer(module) != layer(name)]
    assert not offences, "\n".join(offences)


def graph() -> dict[str, set[str]]:
    edges = {}
    for name, path in MODULES.items():
        edges[name] = {module for module, _, _ in imports(path) if module in MODULES and module != name
                       and not name.startswith(module + ".")}  # a submodule's own package is not a dependency
    return edges


def test_there_is_no_import_cycle():
    edges, state, cycles = graph(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(" → ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack else f"{node} → {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert not cycles, "\n".join(cycles)


def test_no_private_name_is_imported_from_another_module():
    offences = [f"{name} line {line}: {module}.{imported}" for name, path in MODULES.items()
                for module, imported, line in imports(path)
                if imported and imported.startswith("_") and not imported.startswith("__")
                and module.startswith("gapcourse")]
    assert not offences, "\n".join(offences)


def test_no_package_module_uses_mock():
    offences = [f"{name} line {line}" for name, path in MODULES.items() for module, imported, line in imports(path)
                if module.startswith("unittest.mock") or imported == "mock" or module == "mock"]
    assert not offences, "\n".join(offences)


NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + \
    sorted((ROOT / "notebooks" / "student").glob("[0-9][0-9]_*.ipynb"))


def notebook_imports(path: Path) -> list[tuple[str, int]]:
    """(module, cell) for every gapcourse module a code cell imports or reaches as ``gapcourse.x.y``."""
    found = []
    for number, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("!", "%")))
        try:
            tree = ast.parse(source)
        except SyntaxError:  # a placeholder a learner fills in
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gapcourse"):
                found += [(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module, number)
                          for a in node.names]
            elif isinstance(node, ast.Import):
                found += [(a.name, number) for a in node.names if a.name.startswith("gapcourse")]
            elif isinstance(node, ast.Attribute):
                chain, value = [node.attr], node.value
                while isinstance(value, ast.Attribute):
                    chain.append(value.attr)
                    value = value.value
                if isinstance(value, ast.Name) and value.id == "gapcourse":
                    dotted = "gapcourse." + ".".join(reversed(chain))
                    while dotted not in MODULES and "." in dotted:
                        dotted = dotted.rsplit(".", 1)[0]
                    if dotted == "gapcourse" and not hasattr(gapcourse, chain[-1]):
                        dotted = f"gapcourse.{chain[-1]} (no such name)"  # e.g. a module that moved away
                    found.append((dotted, number))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_notebooks_use_only_the_learners_layer(path):
    offences = [f"cell {cell}: {module}" for module, cell in notebook_imports(path)
                if layer(module) in LAB or (module not in MODULES and module != "gapcourse")]
    assert not offences, "\n".join(offences)


def test_an_old_module_name_says_where_the_module_went():
    import importlib
    import re

    from gapcourse.moved import MOVED

    for old, new in MOVED.items():
        assert old not in MODULES, f"{old} exists again: drop it from gapcourse.moved.MOVED"
        with pytest.raises(ModuleNotFoundError, match=re.escape(f"{old} has moved: it is now")):
            importlib.import_module(old)
        for named in re.findall(r"gapcourse(?:\.\w+)+", new):
            assert named in MODULES or named.rsplit(".", 1)[0] in MODULES, f"{old} points at {named}, which is not there"
