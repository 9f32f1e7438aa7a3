"""The package as a whole: importing it does no work, and its public API is small and real."""

from __future__ import annotations

import json
import subprocess
import sys

import cnfviz

PROBE = """
import json, sys, threading
import torch
probes = []
for name in ("is_available", "device_count"):
    real = getattr(torch.cuda, name)
    setattr(torch.cuda, name, lambda real=real, name=name: probes.append(name) or real())
import cnfviz
from cnfviz import PRESETS  # the table itself is built on first use, not on import
print(json.dumps({
    "streamlit": sorted(m for m in sys.modules if m == "streamlit" or m.startswith("streamlit.")),
    "ray": "ray" in sys.modules,
    "threads": threading.active_count(),
    "probes": probes,
}))
len(PRESETS)
"""


def test_importing_cnfviz_loads_no_streamlit_probes_no_device_and_starts_no_thread():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"streamlit": [], "ray": False, "threads": 1, "probes": []}


def test_presets_are_built_when_first_used():
    assert "seed" in cnfviz.PRESETS
    assert cnfviz.PRESETS["seed"].config == cnfviz.training.presets.SEED_CONFIG
    assert len(list(cnfviz.PRESETS)) == len(cnfviz.PRESETS) >= 7


def test_every_public_name_exists():
    for name in cnfviz.__all__:
        assert getattr(cnfviz, name) is not None, name
