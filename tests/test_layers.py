"""The layout is the architecture: each sub-package imports only from the layers below it (or its own).

The layers, lowest first: the private basics, the flow's maths, the targets, one run's training, the
figures, the runtime of many runs, the app's features, the command line, and the UI on top. Imports
under ``if TYPE_CHECKING:`` are annotations only and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cnfviz"
LAYERS = ["_validation", "_text", "_env", "flow", "targets", "training", "figures", "runtime", "features", "cli", "ui"]
LEVEL = {name: (0 if name == "_text" else i) for i, name in enumerate(LAYERS)}
LEVEL["__main__"] = LEVEL["cli"]


def _part(path: Path) -> str:
    """The top-level part of cnfviz a file belongs to: ``flow`` for cnfviz/flow/ffjord.py."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _package_of(path: Path) -> tuple[str, ...]:
    here = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return here if path.name == "__init__.py" else here[:-1]


def _runtime_imports(source: str, package: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line, top-level part of cnfviz) of each import that runs in ``source``, a module of ``package``
    (e.g. ``("cnfviz", "flow")``), skipping TYPE_CHECKING blocks."""
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                dotted = [*base, *(node.module.split(".") if node.module else [])]
            else:
                dotted = (node.module or "").split(".")
            if dotted[0] != "cnfviz":
                continue
            if len(dotted) == 1:  # from cnfviz import x: x is a sub-package or a top-level name
                found += [(node.lineno, a.name) for a in node.names if a.name in LEVEL]
            else:
                found.append((node.lineno, dotted[1]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("cnfviz.")]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_part_of_the_package_has_a_layer():
    parts = {_part(p) for p in MODULES}
    assert parts <= set(LEVEL), f"not in LAYERS: {sorted(parts - set(LEVEL))}"
    assert {"flow", "targets", "training", "figures", "runtime", "features", "ui"} <= parts


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path: Path):
    mine = LEVEL[_part(path)]
    upward = [
        f"line {line}: imports cnfviz.{part}"
        for line, part in _runtime_imports(path.read_text(), _package_of(path))
        if part in LEVEL and LEVEL[part] > mine
    ]
    assert not upward, f"{path.relative_to(PACKAGE)} ({_part(path)}) reaches up: {upward}"


def test_the_checker_sees_upward_imports_and_skips_annotations():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from ..runtime.job import TrainingJob\n"
        "from .dynamics import ODENet\n"
        "import cnfviz.ui.session\n"
        "if TYPE_CHECKING:\n"
        "    from ..features.learn import AffineDemo\n"
    )
    assert _runtime_imports(source, ("cnfviz", "flow")) == [(2, "runtime"), (3, "flow"), (4, "ui")]


def test_cnfviz_keeps_a_small_modelling_api():
    import cnfviz

    assert len(cnfviz.__all__) <= 20
    assert {"TrainConfig", "ModelConfig", "FFJORD", "train", "make_target"} <= set(cnfviz.__all__)
    for name in cnfviz.__all__:
        assert getattr(cnfviz, name) is not None


def test_every_sub_package_says_what_it_holds():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init.relative_to(PACKAGE)} needs a docstring"
        for module in init.parent.glob("*.py"):
            if module.name != "__init__.py" and init.parent.name != "ui":
                assert f"``{module.stem}``" in doc, f"{init.relative_to(PACKAGE)} does not list {module.stem}"


def test_the_tests_mirror_the_package():
    tests = Path(__file__).resolve().parent
    for sub in ("flow", "targets", "training", "figures", "runtime", "features", "ui"):
        assert (PACKAGE / sub).is_dir() and any((tests / sub).glob("test_*.py")), sub
