"""``cnfviz sweep``: many runs at once, the grid product of ``--vary`` flags over every ``train`` option.

Runs of one shape train as one stack (:class:`~cnfviz.runtime.scheduler.Scheduler`), so a sweep of sixteen seeds costs
far less than sixteen ``cnfviz train`` calls; each run's numbers are the ones it gets alone. With
``--backend ray`` the runs are submitted and collected through :class:`~cnfviz.runtime.backend.RayBackend` as
``cnfviz train --backend ray`` is: runs of one shape train as one stack in one actor on the cluster (a new
actor past its stack size), the others in an actor each.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .._validation import ConfigError, check_int_range, check_writable
from ..targets import SamplesTarget, samples_from_csv
from ..training.trainer import Trainer, TrainResult
from .backend import Backend, cli_backend, run_placement
from .budget import RunBudget, check_run, run_dim
from .housekeeping import warm_up
from .scheduler import Scheduler
from .stack import StackKey, stack_key

__all__ = ["MAX_SWEEP_RUNS", "add_sweep_parser", "check_sweep", "parse_vary", "run_sweep", "sweep_configs"]

MAX_SWEEP_RUNS = 256
"""The most runs one sweep trains (they all hold their models and data at once)."""

# Train options a sweep cannot vary: they describe the sweep's output, or the sweep applies them once for all
# runs (one data file is read, one backend is chosen), so a varied value would train under a false label.
_ONCE_FOR_ALL = ("data", "backend", "ray_address")
_NOT_VARIED = ("json", "save", "quiet", "threads", "config", "help", *_ONCE_FOR_ALL)


def add_sweep_parser(sub: Any, train: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``sweep`` to the subcommands ``sub``: every option of the ``train`` parser, plus ``--vary``."""
    sw = sub.add_parser(
        "sweep",
        add_help=False,  # the train options bring -h along
        help="train many runs at once: the grid product of --vary KEY=V1,V2,... over the train options",
        description="Train the grid product of the --vary flags at once; runs of one shape train as one stack. "
        "Values are separated by commas; a hidden-width list is written with x (hidden=32x32,64x64x64) and a "
        "time span with a colon (tspan=0:0.5,0:1). --max-seconds is each run's budget, --json writes every "
        "run's results, --threads caps torch's threads for the whole sweep.",
    )
    sw._add_container_actions(train)
    sw.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a train option (without dashes) and its values; several --vary flags form the grid product",
    )
    return sw


def _option(train: argparse.ArgumentParser, key: str) -> argparse.Action:
    flag = "--" + key.replace("_", "-")
    for action in train._actions:
        if flag in action.option_strings or f"--no-{key}" in action.option_strings:
            if action.dest in _ONCE_FOR_ALL:
                raise ConfigError(
                    f"--vary: {key!r} is applied once to the whole sweep, so its runs could not differ in it; "
                    f"run one sweep per {key}",
                    field="--vary",
                    allowed="options that differ per run",
                )
            if action.dest in _NOT_VARIED:
                break
            return action
    valid = sorted(
        a.option_strings[0][2:]
        for a in train._actions
        if a.option_strings and a.option_strings[0].startswith("--") and a.dest not in _NOT_VARIED
    )
    raise ConfigError(f"--vary: {key!r} is not a train option a sweep can vary; choose from {', '.join(valid)}")


def _tokens(action: argparse.Action, key: str, value: str) -> list[str]:
    flag = action.option_strings[0]
    if isinstance(action, argparse.BooleanOptionalAction):
        word = value.lower()
        if word not in ("true", "false", "yes", "no", "1", "0"):
            raise ConfigError(f"--vary {key}: expected true or false, got {value!r}")
        return [flag] if word in ("true", "yes", "1") else [f"--no-{flag[2:]}"]
    if action.nargs == 0:
        raise ConfigError(f"--vary: {key!r} is a switch; it cannot take values")
    if action.nargs == 2:
        parts = value.split(":")
        if len(parts) != 2:
            raise ConfigError(f"--vary {key}: expected T0:T1, got {value!r}")
        return [f"{flag}={parts[0]}", parts[1]] if parts[0].startswith("-") else [flag, *parts]
    if action.dest == "hidden":
        value = value.replace("x", ",")
    return [f"{flag}={value}"]


def parse_vary(train: argparse.ArgumentParser, specs: list[str]) -> list[tuple[str, list[list[str]]]]:
    """Each ``--vary KEY=V1,V2`` as ``(KEY, [tokens for V1, tokens for V2])``, checked; raises ConfigError."""
    out: list[tuple[str, list[list[str]]]] = []
    seen: set[str] = set()
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise ConfigError(f"--vary expects KEY=V1,V2,... (got {spec!r})")
        action = _option(train, key)
        if action.dest in seen:
            raise ConfigError(f"--vary: {key!r} is varied twice; give all its values in one flag")
        seen.add(action.dest)
        items = [v.strip() for v in values.split(",")]
        if not items or any(not v for v in items):
            raise ConfigError(f"--vary {key}: expected comma-separated values, got {values!r}")
        twice = sorted({v for v in items if items.count(v) > 1})
        if twice:
            raise ConfigError(
                f"--vary {key}: {', '.join(twice)} is given twice; each value is one run, so give it once",
                field="--vary",
                allowed="distinct values",
            )
        out.append((key, [_tokens(action, key, v) for v in items]))
    return out


@dataclass
class _Run:
    label: str
    args: argparse.Namespace
    config: Any = None
    trainer: Trainer | None = None
    result: TrainResult | None = None
    error: str | None = None
    key: Any = None
    iteration: int = 0
    total: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    job: Any = None  # the run's handle on Ray (None: it trains here, in a thread of this process)
    where: dict[str, Any] = field(default_factory=dict)


def sweep_configs(
    train: argparse.ArgumentParser, args: argparse.Namespace, config_from_args: Any
) -> list[tuple[str, argparse.Namespace, Any]]:
    """The grid: ``(label, namespace, TrainConfig)`` per run, in product order."""
    axes = parse_vary(train, args.vary)
    if not axes:
        raise ConfigError("a sweep needs at least one --vary KEY=V1,V2,...")
    size = 1
    for _, values in axes:
        size *= len(values)
    if size > MAX_SWEEP_RUNS:
        raise ConfigError(f"the --vary grid has {size:,} runs; a sweep trains at most {MAX_SWEEP_RUNS}")
    runs = []
    raw = [[v for v in spec.partition("=")[2].split(",")] for spec in args.vary]
    for combo in itertools.product(*[range(len(values)) for _, values in axes]):
        ns = copy.deepcopy(args)
        tokens = [tok for (_, values), i in zip(axes, combo, strict=True) for tok in values[i]]
        ns = train.parse_args(tokens, namespace=ns)
        label = " ".join(f"{key}={raw[j][i].strip()}" for j, ((key, _), i) in enumerate(zip(axes, combo, strict=True)))
        runs.append((label, ns, config_from_args(ns)))
    same: dict[str, str] = {}
    for label, _, cfg in runs:
        key = cfg.to_json()
        if key in same:  # e.g. lr=1e-3,0.001: two labels, one run, and numbers that look like a finding
            raise ConfigError(
                f"--vary: {same[key]!r} and {label!r} are the same run; give each value once",
                field="--vary",
                allowed="values that make different runs",
            )
        same[key] = label
    return runs


class _Bars:
    """Progress on stderr: one bar per stack (and per run that trains alone), redrawn in place on a terminal."""

    def __init__(self, runs: list[_Run], enabled: bool) -> None:
        self.runs = runs
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._drawn = 0
        groups: dict[Any, list[_Run]] = {}
        for run in runs:
            groups.setdefault(run.key if run.key is not None else ("alone", run.label), []).append(run)
        self.groups = list(groups.values())

    def draw(self, final: bool = False) -> None:
        if not self.enabled or not (self.tty or final):
            return
        lines = []
        for group in self.groups:
            total = sum(r.total for r in group) or 1
            done = sum(r.iteration for r in group)
            frac = min(1.0, done / total)
            finished = sum(r.done.is_set() for r in group)
            name = f"stack of {len(group)}" if len(group) > 1 else group[0].label
            lines.append(
                f"[{'#' * int(frac * 30):<30}] {name:<28.28} {done:>7}/{total} it  {finished}/{len(group)} done"
            )
        if self.tty and self._drawn:
            sys.stderr.write(f"\x1b[{self._drawn}F")
        end = "\x1b[K\n" if self.tty else "\n"  # on a terminal, also clear what a longer line left
        sys.stderr.write("".join(line + end for line in lines))
        sys.stderr.flush()
        self._drawn = len(lines)


def _train_one(run: _Run, scheduler: Scheduler) -> None:
    assert run.trainer is not None
    cancel = threading.Event()
    try:
        scheduler.acquire(run.label, cancel)
        try:
            scheduler.attach(run.trainer)
            run.result = run.trainer.run()
        finally:
            scheduler.release(run.label)
    except Exception as err:  # the trainer never raises for training failures; anything else is a bug
        run.error = f"{type(err).__name__}: {err}"
    finally:
        run.done.set()


def run_sweep(train: argparse.ArgumentParser, args: argparse.Namespace, config_from_args: Any) -> int:
    """Train the sweep ``args`` describes; prints a table, writes ``--json``; returns the exit status."""
    if args.save:
        raise ConfigError("--save writes one checkpoint; a sweep does not take it (use cnfviz train for one run)")
    grid = sweep_configs(train, args, config_from_args)
    if args.json:
        check_writable(args.json, "--json")  # before training: a bad path must not lose every result
    target = None
    if any(cfg.target == "samples" for _, _, cfg in grid):
        if not args.data:
            raise ConfigError('target "samples" needs --data CSV')
        target = SamplesTarget(samples_from_csv(args.data))
    check_sweep(grid, target)
    threads = None if args.threads is None else check_int_range(args.threads, "--threads", lo=1, hi=1024)
    backend = cli_backend(args.backend, args.ray_address)  # an unreachable cluster stops here, before training
    if backend.name != "local":
        return _finish(args, _train_remote(backend, grid, target, not args.quiet), backend)
    scheduler = Scheduler(capacity=len(grid), threads=threads)
    warm_up()
    runs = []
    for label, ns, cfg in grid:
        run = _Run(label, ns, cfg, total=cfg.adam_iters + cfg.lbfgs_iters)

        def progress(rec: Any, run: _Run = run) -> None:
            run.iteration = rec.iteration

        run.trainer = Trainer(cfg, target=target if cfg.target == "samples" else None, callback=progress)
        run.key = stack_key(run.trainer)
        runs.append(run)
    bars = _Bars(runs, enabled=not args.quiet)
    start = time.perf_counter()
    workers = [threading.Thread(target=_train_one, args=(run, scheduler), daemon=True) for run in runs]
    for worker in workers:
        worker.start()
    try:
        while not all(run.done.wait(0.25 if bars.tty else 1.0) for run in runs):
            bars.draw()
    except KeyboardInterrupt:
        for run in runs:
            if run.trainer is not None:
                run.trainer.stop()
        for worker in workers:
            worker.join(30)
        raise
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - start
    bars.draw(final=True)
    for run in runs:
        run.where = {"worker_pid": os.getpid()}  # local runs train in threads of this very process
    return _finish(args, (runs, wall), backend)


def check_sweep(grid: list[tuple[str, argparse.Namespace, Any]], target: Any = None) -> None:
    """Refuse a sweep over this machine's budget before anything is built: each run alone, then all of them at
    once (a local sweep trains every run together), with :meth:`RunBudget.for_cli`'s limits.

    Raises:
        ConfigError: naming the run (its ``--vary`` label) and the setting to change.
    """
    budget = RunBudget.for_cli()
    total = 0.0
    for label, _, cfg in grid:
        dim = target.dim if target is not None and cfg.target == "samples" else (run_dim(cfg) or 2)
        try:
            total += check_run(cfg, dim, budget).peak_bytes
        except ConfigError as err:
            raise ConfigError(f"run {label}: {err}", field=err.field, allowed=err.allowed) from None
    if budget.max_bytes is not None and total > budget.max_bytes:
        raise ConfigError(
            f"the {len(grid)} runs of this sweep train at once and would need about {total / 1e9:,.1f} GB together; "
            f"the limit on {budget.where} is {budget.max_bytes / 1e9:,.1f} GB ({budget.source}). "
            "Use fewer --vary values or a smaller batch_size",
            field="--vary",
            allowed=f"runs needing {budget.max_bytes / 1e9:,.1f} GB together",
        )


def _train_remote(
    backend: Backend, grid: list[tuple[str, argparse.Namespace, Any]], target: Any, progress: bool
) -> tuple[list[_Run], float]:
    """Train every run of ``grid`` on ``backend`` (by stacks, in actors); returns the runs, ended, and the wall
    time."""
    runs = [_Run(label, ns, cfg, total=cfg.adam_iters + cfg.lbfgs_iters) for label, ns, cfg in grid]
    start = time.perf_counter()
    try:
        for run in runs:
            run.job = backend.submit(run.config, target=target if run.config.target == "samples" else None)
            run.key = getattr(run.job, "stack_key", None)  # a stack actor's run (None: an actor of its own)
        bars = _Bars(runs, enabled=progress)
        for run in runs:
            run.job.start()
        while not all(run.done.is_set() for run in runs):
            for run in runs:
                if run.done.is_set():
                    continue
                snap = run.job.snapshot()
                run.iteration = snap.iteration
                if not run.job.alive:
                    run.job.join(10)  # collects the final poll: result, history, weights
                    run.result = run.job.result
                    if run.result is None:
                        snap = run.job.snapshot()
                        run.error = snap.reason or "the run ended without a result"
                    run.where = run_placement(run.job)
                    run.done.set()
            bars.draw()
    except BaseException:  # Ctrl-C or a fault here: the actors would train on for nobody
        for run in runs:
            close = getattr(run.job, "close", None)
            if close is not None:
                close()
        raise
    wall = time.perf_counter() - start
    bars.draw(final=True)
    return runs, wall


def _finish(args: argparse.Namespace, ended: tuple[list[_Run], float], backend: Backend) -> int:
    """Print the table, write ``--json`` (with where the sweep and each run trained); the exit status."""
    runs, wall = ended
    out = {**backend.describe(), **_report(runs, wall)}
    if args.json:
        text = json.dumps(out, indent=2, default=float)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as fh:
                fh.write(text + "\n")
    stream = sys.stderr if args.json == "-" else sys.stdout
    for row in out["runs"]:
        nll = "-" if row["test_nll"] is None else f"{row['test_nll']:.4f}"
        print(
            f"{row['label']}: {row['status']}, {row['iterations']} iterations in {row['train_seconds']:.2f}s, "
            f"test_nll {nll}",
            file=stream,
        )
    print(f"{len(runs)} runs in {wall:.1f}s wall, {len(out['stacks'])} stack(s)", file=stream)
    return 0 if all(row["status"] != "failed" for row in out["runs"]) else 1


def _report(runs: list[_Run], wall: float) -> dict[str, Any]:
    rows = []
    for run in runs:
        result = run.result
        metrics = result.metrics.to_dict() if result is not None and result.metrics is not None else {}
        rows.append(
            {
                "label": run.label,
                "config": run.config.to_dict(),
                "iterations": result.iterations if result else 0,
                "train_seconds": result.train_seconds if result else 0.0,
                "test_nll": metrics.get("test_nll"),
                "status": result.status if result else "failed",
                "reason": result.reason if result else (run.error or "did not run"),
                "final_loss": result.last.loss if result is not None and result.last is not None else None,
                "metrics": metrics,
                "notes": _notes(run),
                **run.where,
            }
        )
    stacks: dict[Any, list[str]] = {}
    for run in runs:
        if run.key is not None:  # one stack per shape and process: on Ray, a key may fill several actors
            stacks.setdefault((run.key, run.where.get("actor_id")), []).append(run.label)
    return {
        "runs": rows,
        "wall_seconds": wall,
        "stacks": [{"runs": labels, "shape": _shape(key)} for (key, _), labels in stacks.items() if len(labels) > 1],
    }


def _notes(run: _Run) -> list[str]:
    if run.trainer is not None:
        return list(run.trainer.notes)
    return list(run.job.snapshot().notes) if run.job is not None else []


def _shape(key: tuple[Any, ...]) -> dict[str, Any]:
    """A stack's key as JSON: its fields by name (the widths as a list); ``batch`` is the key's ``batch_rows``."""
    fields = {("batch" if name == "batch_rows" else name): value for name, value in StackKey(*key)._asdict().items()}
    return {name: list(v) if isinstance(v, tuple) else v for name, v in fields.items()}
