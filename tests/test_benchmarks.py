"""Every benchmark script imports, and every Python snippet it runs in a subprocess imports what it names.

Benchmarks are scripts that nothing else imports, and their child processes' code lives in strings that
neither ruff nor the other tests read: a name cut from the package's API broke two of them silently
(``warm_up`` and ``configure_threads``, no longer exported by ``cnfviz``). These tests import each script
without running it (each keeps its work under ``if __name__ == "__main__"``) and execute the import
statements of each snippet.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py"))


def _load(path: Path) -> object:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # as when run: ``python benchmarks/x.py`` puts its folder first
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def snippets(module: object) -> dict[str, list[ast.stmt]]:
    """The module-level strings that hold Python import lines: ``{name: those import statements}``.

    Only the import lines are parsed, so that a ``str.format`` template (``{targets!r}``) counts too.
    """
    out = {}
    for name, value in vars(module).items():
        if not isinstance(value, str) or name.startswith("__"):
            continue
        imports = []
        for line in value.splitlines():
            if not line.startswith(("import ", "from ")):
                continue
            try:
                imports += ast.parse(line).body
            except SyntaxError:
                continue  # prose that happens to start with "from"
        if imports:
            out[name] = imports
    return out


def test_every_script_has_a_main_guard_and_there_are_scripts():
    assert len(SCRIPTS) >= 10, SCRIPTS
    for path in SCRIPTS:
        if path.name == "common.py":
            continue
        assert 'if __name__ == "__main__":' in path.read_text(), f"{path.name} would run when imported"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_imports(path):
    _load(path)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_subprocess_snippets_import(path):
    module = _load(path)
    for name, imports in snippets(module).items():
        code = compile(ast.Module(body=imports, type_ignores=[]), f"{path.name}:{name}", "exec")
        try:
            exec(code, {})
        except ImportError as err:
            pytest.fail(f"{path.name}: the snippet {name} cannot import: {err}")


def test_snippet_finder_finds_the_known_snippets_and_only_python():
    found = {p.name: set(snippets(_load(p))) for p in SCRIPTS}
    assert found["bench_abuse.py"] >= {"_CHILD"}
    assert found["bench_app.py"] >= {"HEADLESS"}
    assert found["bench_step.py"] >= {"MEASURE"}
    assert all("JS" not in name for names in found.values() for name in names)


def test_a_snippet_importing_a_missing_name_fails():
    bad = snippets(type("M", (), {"CODE": "import sys\nfrom cnfviz import no_such_name\nprint(1)\n"}))
    assert list(bad) == ["CODE"]
    with pytest.raises(ImportError, match="no_such_name"):
        exec(compile(ast.Module(body=bad["CODE"], type_ignores=[]), "CODE", "exec"), {})
