"""The ``./dev`` set-up script: on a machine without Chromium, ``./dev test`` installs it with apt-get.

The script runs for real, against a PATH of stand-ins: an ``apt-get`` that records its arguments, and no
Chromium anywhere, so the test sees exactly what a fresh Debian machine would make the script do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("bash", "cksum", "cut", "id", "sed", "cat", "dirname")


@pytest.fixture
def fresh_machine(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose PATH has the basic tools and a recording apt-get, but no chromium."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    calls = tmp_path / "apt-calls"
    apt = bin_dir / "apt-get"
    apt.write_text(f'#!{shutil.which("bash")}\necho "$*" >> {calls}\n')
    apt.chmod(0o755)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    stamp = subprocess.run(["cksum"], stdin=open(ROOT / "pyproject.toml", "rb"), capture_output=True, text=True)
    (venv / f".cnfviz-test-{stamp.stdout.split()[0]}").touch()  # set-up already done: skip pip
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "CNFVIZ_VENV": str(venv),
        "CNFVIZ_CHROMIUM": str(tmp_path / "no-chromium"),
    }
    return env, calls


def test_dev_test_installs_chromium_when_missing(fresh_machine):
    env, calls = fresh_machine
    out = subprocess.run(
        ["bash", str(ROOT / "dev"), "test", "--version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "pytest" in (out.stdout + out.stderr)
    lines = calls.read_text().splitlines()
    assert lines[0].startswith("update")
    assert any(line.startswith("install") and line.split()[-1] == "chromium" for line in lines), lines


def test_dev_test_fails_in_ci_when_chromium_cannot_be_installed(fresh_machine):
    env, _ = fresh_machine
    os.unlink(Path(env["PATH"]) / "apt-get")
    out = subprocess.run(
        ["bash", str(ROOT / "dev"), "test", "--version"], env={**env, "CI": "true"}, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "no Chromium" in out.stderr
    dev = ["bash", str(ROOT / "dev"), "test", "--version"]
    outside_ci = subprocess.run(dev, env=env, capture_output=True, text=True)
    assert outside_ci.returncode == 0
    assert "will be skipped" in outside_ci.stderr


def test_dev_test_leaves_an_installed_chromium_alone(fresh_machine, tmp_path):
    env, calls = fresh_machine
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    out = subprocess.run(
        ["bash", str(ROOT / "dev"), "test", "--version"],
        env={**env, "CNFVIZ_CHROMIUM": str(chromium)},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert not calls.exists()
