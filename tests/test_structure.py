"""The size limits of issue 9 ("one room per job"): no module over 500 lines, no class over 300.

A module or class past these limits mixes jobs; split it along a concept boundary (see
docs/architecture.md) rather than raise the limit.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("onlinedeep", "cli", "infinite_mnist")
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300


def _modules() -> list[Path]:
    return sorted(py for package in PACKAGES for py in (ROOT / package).rglob("*.py"))


def module_lines(path: Path) -> int:
    """Lines of a source file, as ``wc -l`` counts them (a last line without newline included)."""
    return len(path.read_text(encoding="utf-8").splitlines())


def class_lines(path: Path) -> dict[str, int]:
    """Lines of every class of a module, decorators included, keyed by qualified name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    sizes: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                first = min([d.lineno for d in child.decorator_list] + [child.lineno])
                name = prefix + child.name
                sizes[name] = child.end_lineno - first + 1
                visit(child, name + ".")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return sizes


def test_the_packages_have_modules():
    # a moved or renamed package must not make the size checks below vacuous
    found = {path.relative_to(ROOT).parts[0] for path in _modules()}
    assert found == set(PACKAGES)


def test_no_module_over_500_lines():
    over = {str(p.relative_to(ROOT)): n for p in _modules() if (n := module_lines(p)) > MAX_MODULE_LINES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split them, issue 9): {over}"


def test_no_class_over_300_lines():
    over = {f"{p.relative_to(ROOT)}:{name}": n for p in _modules()
            for name, n in class_lines(p).items() if n > MAX_CLASS_LINES}
    assert not over, f"classes over {MAX_CLASS_LINES} lines (split them, issue 9): {over}"


def test_the_measures_count_what_they_should(tmp_path):
    path = tmp_path / "m.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(301))
    path.write_text(f"@decorator\nclass Big:\n{body}\n\n\ndef f():\n    class Inner:\n        pass\n")
    assert module_lines(path) == 308
    assert class_lines(path) == {"Big": 303, "f.Inner": 2}
    with pytest.raises(SyntaxError):
        path.write_text("class (:\n")
        class_lines(path)
