"""The Learn package: one module per lesson, nothing of it in cnfviz.figures, no device probe at import."""

import ast
import subprocess
import sys
from pathlib import Path

import cnfviz
from cnfviz.features import learn

PACKAGE = Path(cnfviz.__file__).parent

LESSONS = ("change_of_variables", "linear_flow", "hutchinson", "time_span", "regularizers", "sampling", "flow_matching")


def test_each_lesson_has_a_module_with_its_numbers_and_its_figure():
    for name in LESSONS:
        module = __import__(f"cnfviz.features.learn.{name}", fromlist=["__all__"])
        figures = [n for n in module.__all__ if n.endswith("_figure")]
        assert len(figures) == 1, (name, module.__all__)
        assert getattr(learn, figures[0]) is getattr(module, figures[0]), "re-exported by the package"
        assert f"``{name}``" in learn.__doc__


def test_figures_knows_nothing_of_the_learn_page():
    for path in (PACKAGE / "figures").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = [
            node.module or ""
            for node in ast.walk(tree)  # TYPE_CHECKING blocks too: no arrow up, not even for annotations
            if isinstance(node, ast.ImportFrom)
        ]
        assert not [m for m in imported if "features" in m or "learn" in m], (path.name, imported)
    assert not (PACKAGE / "figures" / "learn.py").exists()


def test_importing_the_lessons_does_not_ask_torch_for_a_device():
    code = (
        "import torch\n"
        "calls = []\n"
        "real = torch.cuda.is_available\n"
        "torch.cuda.is_available = lambda: calls.append(1) or real()\n"
        "import cnfviz.features.learn as learn\n"
        "before = len(calls)\n"
        "learn.REGULARIZER_CONFIG\n"
        "print(before, len(calls) > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["0", "True"], out.stdout + out.stderr
