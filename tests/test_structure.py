"""The rules of the house, measured on the code: no import circle in ``quire_assets``, Dagster's
internals behind one door, the environment read in one module, and pages written from the code
that match it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "quire_assets"


def _modules() -> tuple[dict[str, ast.Module], set[str]]:
    found, packages = {}, set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
        if parts[-1] == "__init__":
            packages.add(name)
    return found, packages


MODULES, PACKAGES = _modules()


def _imported(name: str, tree: ast.Module) -> set[str]:
    """The quire_assets modules ``name`` imports, at any depth of its code (a module named in
    ``from package import module`` counts as that module)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative: from ``name``'s package (a package's own __init__ is its package)
                parts = name.split(".") if name in PACKAGES else name.split(".")[:-1]
                base = ".".join([*parts[: len(parts) - node.level + 1], node.module])
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
    return {m for m in out if m in MODULES and m != name}


def _file_of(name: str) -> str:
    return name.replace(".", "/")


def test_no_import_circle_in_the_package():
    graph = {name: _imported(name, tree) for name, tree in MODULES.items()}
    # A package's __init__ that only hands on names of its own modules is not a step of a circle.
    faces = {n for n, t in MODULES.items() if n.count(".") >= 1 and PACKAGE.joinpath(*n.split(".")[1:], "__init__.py").exists()
             and not any(isinstance(s, ast.FunctionDef | ast.ClassDef) for s in t.body)}
    graph = {n: {m for m in deps if m not in faces} for n, deps in graph.items() if n not in faces}
    seen: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_dagster_internals_are_imported_by_the_runtime_package_only():
    private = re.compile(r"^(dagster\._|dagster_shared\b|dagster_celery\.)")
    outside = []
    for name, tree in MODULES.items():
        if name.startswith("quire_assets.runtime"):
            continue
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            outside += [f"{_file_of(name)}.py:{node.lineno} {n}" for n in names if private.match(n)]
    assert not outside


def test_the_environment_is_read_in_the_settings_module_only():
    outside = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "settings.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bos\.(environ|getenv|putenv|unsetenv)\b|\bfrom os import .*environ", line):
                outside.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not outside


def test_every_variable_the_package_names_is_a_setting():
    """A QUIRE_ or DAGSTER_ variable named anywhere in the package is one of the settings (so
    docs/configuration.md lists it), or one that names a deployment's other parts."""
    from dataclasses import fields

    from quire_assets.settings import Settings

    known = {f.metadata["variable"] for f in fields(Settings)}
    named = set()
    for path in PACKAGE.rglob("*"):
        if path.suffix in (".py", ".toml", ".html", ".js"):
            named.update(re.findall(r"\b(?:QUIRE|DAGSTER)_[A-Z][A-Z_]*[A-Z]\b", path.read_text(encoding="utf-8")))
    assert named - known == set()
    assert {"QUIRE_HOME", "QUIRE_CATALOG", "QUIRE_SOURCE", "DAGSTER_HOME"} <= named


@pytest.mark.parametrize("page, module", [("docs/cli.md", "quire_assets.cli.reference"),
                                          ("docs/configuration.md", "quire_assets.settings")])
def test_pages_written_from_the_code_match_it(page, module):
    import importlib

    written = importlib.import_module(module).markdown()
    assert (ROOT / page).read_text(encoding="utf-8") == written, (
        f"{page} differs from the code: python -m {module} > {page}")


def test_the_cli_reference_covers_every_command_and_option():
    from quire_assets.cli import build_parser
    from quire_assets.cli.reference import _subcommands

    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, sub in _subcommands(build_parser()):
        assert f"## `quire {name}`" in page
        for action in sub._actions:
            for option in action.option_strings:
                assert option in page, f"quire {name} {option}"


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 150
    links = re.findall(r"\]\(((?:docs/)?[\w./-]+\.(?:md|png))\)", readme)
    assert {"docs/cli.md", "docs/configuration.md", "docs/deployment.md", "CONTRIBUTING.md"} <= set(links)
    for link in links:
        assert (ROOT / link).exists(), link
    # The test command the README gives is the one CI runs.
    assert "ruff check . && pytest" in readme and "ruff check . && pytest" in (ROOT / ".ci" / "run").read_text()


def test_doc_pages_link_to_files_that_exist():
    for page in [*(ROOT / "docs").glob("*.md"), ROOT / "CONTRIBUTING.md"]:
        for link in re.findall(r"\]\(([\w./-]+\.(?:md|png))\)", page.read_text(encoding="utf-8")):
            assert (page.parent / link).exists(), f"{page.name} links to {link}"
