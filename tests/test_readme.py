"""The README is the front door: its Python example runs, and its set-up commands exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_python_example_runs_and_meets_the_tutorials_figure():
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["result"].metrics.seed_tv <= 0.0314
    assert tuple(namespace["new_data"].shape) == (100, 1)
    assert namespace["logpx"].shape == (5,)


def test_readme_set_up_commands_point_at_real_scripts():
    assert "./dev app" in README and "./dev test" in README
    dev = (ROOT / "dev").read_text()
    assert "app)" in dev and "test)" in dev and "torch==2.13.0" in dev
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()
