"""The layer rules of docs/architecture.md, checked on the source: who may import whom, where family names may
be compared, and how large a module may grow."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from common.family import ModelFamily
from stargan.families import FAMILIES, config_classes

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "cyclegan", "pix2pix", "stargan")
# The application: the only code that sees every family.
APPLICATION = ("stargan/cli", "stargan/evaluation", "stargan/compare", "stargan/editor", "stargan/families.py",
               "stargan/__main__.py")
MAX_LINES = 500
# Configs may spell family names: a family's own `model` Literal, and compare's per-family YAML sections.
NAME_SPELLING_ALLOWED = ("stargan/families.py", "cyclegan/config.py", "pix2pix/config.py", "stargan/config.py",
                         "stargan/compare/config.py")


def _modules(packages: tuple[str, ...] = PACKAGES) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _is_application(path: Path) -> bool:
    rel = _rel(path)
    return any(rel == a or rel.startswith(a + "/") for a in APPLICATION)


def _family_of(path: Path) -> str | None:
    """The family package a module belongs to (None for common/ and the application)."""
    rel = _rel(path)
    if rel.startswith("common/") or _is_application(path):
        return None
    return rel.split("/")[0]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _is_app_module(name: str) -> bool:
    dotted = [a.replace("/", ".").removesuffix(".py") for a in APPLICATION]
    return any(name == a or name.startswith(a + ".") for a in dotted)


def test_common_imports_no_family_and_no_application():
    offenders = [(_rel(p), name) for p in _modules() if _rel(p).startswith("common/")
                 for name in _imports(p) if name.split(".")[0] in ("cyclegan", "pix2pix", "stargan")]
    assert not offenders, offenders


def test_family_code_imports_no_other_family_and_no_application():
    offenders = []
    for path in _modules():
        family = _family_of(path)
        if family is None:
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            if (top in ("cyclegan", "pix2pix", "stargan") and top != family) or _is_app_module(name):
                offenders.append((_rel(path), name))
    assert not offenders, offenders


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """String literals of a module, except docstrings (bare expression statements), the CLI's program name
    (``prog_name="stargan"`` is the command, not the family), folder-name constants (``*_DIR = "..."``) and
    path components (``ROOT / "configs" / "stargan"``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    skip |= {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.keyword) and node.arg == "prog_name"}
    skip |= {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)
             and all(isinstance(t, ast.Name) and t.id.endswith("_DIR") for t in node.targets)}
    skip |= {id(side) for node in ast.walk(tree) if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
             for side in (node.left, node.right)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip]


def test_family_names_are_compared_only_in_the_registry():
    # A family's name may be written in its config class (the `model` Literal and default) and nowhere else
    # in code: everything else goes through stargan/families.py and the family objects.
    offenders = [f"{_rel(path)}:{line}: {value!r}" for path in _modules(PACKAGES + ("benchmarks",))
                 if _rel(path) not in NAME_SPELLING_ALLOWED
                 for line, value in _string_constants(path) if value in FAMILIES]
    assert not offenders, "\n".join(offenders)


def test_no_module_over_the_size_limit():
    big = {_rel(p): n for p in _modules() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not big, big


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_family_declares_itself_consistently(name):
    family = FAMILIES[name]
    assert isinstance(family, ModelFamily) and family.name == name
    assert config_classes()[name] is family.config_class
    assert family.config_class().model == name  # a default config names its own family
    assert family.official_hint and family.title
    assert len(set(family.translate_options)) == len(family.translate_options)


def test_cli_answers_help_without_loading_torch():
    # Commands import the library when they run: `stargan --help` and option errors must answer at once.
    code = "import sys, stargan.cli; print(sorted(m for m in ('torch', 'torchvision', 'numpy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr or result.stdout
