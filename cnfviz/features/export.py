"""Code export: a short Python script that reproduces a run with the cnfviz API, like the seed tutorial."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..flow.config import ModelConfig
from ..flow.solver import SolverConfig
from ..training.config import TrainConfig

__all__ = ["config_to_code"]


def _changed(obj: Any, default: Any) -> dict[str, Any]:
    """The fields of a dataclass that differ from its defaults, in declaration order."""
    return {f.name: getattr(obj, f.name) for f in fields(obj) if getattr(obj, f.name) != getattr(default, f.name)}


def _call(name: str, kwargs: dict[str, Any], indent: str) -> str:
    if not kwargs:
        return f"{name}()"
    inner = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    if len(inner) + len(name) + len(indent) < 96:
        return f"{name}({inner})"
    body = "".join(f"{indent}    {k}={v!r},\n" for k, v in kwargs.items())
    return f"{name}(\n{body}{indent})"


def config_to_code(config: TrainConfig, *, n_samples: int = 100) -> str:
    """A runnable script: build the config, cap torch's threads as the app does, train, print the metrics,
    sample new data.

    Only fields that differ from the defaults are written, so the script stays short. Custom
    targets (``samples``, ``image``) read their data from a file named in a comment.

    Example:
        >>> print(config_to_code(TrainConfig(target="moons", adam_iters=100)).splitlines()[0])
        # Reproduce this cnfviz run: train, evaluate, sample.
    """
    top = _changed(config, TrainConfig())
    for key in ("model", "solver"):
        top.pop(key, None)
    top = {"target": config.target, **{k: v for k, v in top.items() if k != "target"}}
    model = _call("ModelConfig", _changed(config.model, ModelConfig()), "    ")
    solver = _call("SolverConfig", _changed(config.solver, SolverConfig()), "    ")
    lines = [f"    {k}={v!r}," for k, v in top.items()]
    if model != "ModelConfig()":
        lines.append(f"    model={model},")
    if solver != "SolverConfig()":
        lines.append(f"    solver={solver},")
    imports = ["FFJORDDistribution", "TrainConfig", "Trainer"]
    imports += ["ModelConfig"] if model != "ModelConfig()" else []
    imports += ["SolverConfig"] if solver != "SolverConfig()" else []
    target_line = "trainer = Trainer(config)"
    if config.target == "samples":
        imports += ["SamplesTarget"]
        target_line = (
            "from cnfviz.targets import samples_from_csv\n\n"
            "# Your data: a CSV with one or two numeric columns.\n"
            'trainer = Trainer(config, target=SamplesTarget(samples_from_csv("data.csv")))'
        )
    elif config.target == "image":
        imports += ["ImageTarget"]
        target_line = (
            "from cnfviz.targets import image_from_file\n\n"
            "# Your picture: a grayscale image used as a 2D density.\n"
            'trainer = Trainer(config, target=ImageTarget(image_from_file("image.png")))'
        )
    return "\n".join(
        [
            "# Reproduce this cnfviz run: train, evaluate, sample.",
            "import torch",
            "",
            f"from cnfviz import {', '.join(sorted(imports))}",
            "from cnfviz.runtime.housekeeping import configure_threads",
            "",
            "config = TrainConfig(",
            *lines,
            ")",
            target_line,
            "# As the app does: a small network trains fastest on few threads. torch's default, one per core, ran",
            "# this about 5x slower than the app on a machine whose cores were busy with something else.",
            "configure_threads()",
            "result = trainer.run()  # Adam, then LBFGS when lbfgs_iters > 0",
            "print(result.status, result.reason, f'{result.iterations} iterations in {result.train_seconds:.1f}s')",
            "m = result.metrics",
            "print(f'seed_tv={m.seed_tv:.6f} tv={m.tv:.6f} test_nll={m.test_nll:.6f} integral={m.integral:.6f}')",
            "",
            "# New data from the trained flow, like the tutorial's rand(ffjord_dist, n).",
            "dist = FFJORDDistribution(trainer.model, generator=torch.Generator().manual_seed(0))",
            f"new_data = dist.sample(({n_samples},))",
            "print(new_data.shape)",
            "",
        ]
    )
