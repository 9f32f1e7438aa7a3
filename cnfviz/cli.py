"""The ``cnfviz`` command line: ``cnfviz train``, ``cnfviz sweep`` (many runs at once) and ``cnfviz sample``.

Bad input prints one line, ``cnfviz: error: ...``, and exits with status 2; never a traceback. That holds
for the flags argparse checks itself too (an unknown solver, a word where a number goes): :class:`_Parser`
prints its error on one line instead of the usage block. Output paths (``--save``, ``--json``, ``--out``) are
tried before any work, and a run over this machine's budget (:class:`~cnfviz.runtime.budget.RunBudget.for_cli`) is
refused before it allocates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np
import torch

from ._text import printable
from ._validation import ConfigError, check_int_range, check_writable
from .flow.ffjord import FFJORD
from .runtime.backend import BACKENDS, RAY_ADDRESS_ENV, Backend, LocalBackend, cli_backend, run_placement, run_record
from .runtime.budget import RunBudget, check_run, run_dim
from .runtime.housekeeping import configure_threads, warm_up
from .runtime.sweep import add_sweep_parser, run_sweep
from .targets import TARGETS, Target, samples_from_csv
from .training.checkpoint import load_checkpoint, save_checkpoint
from .training.config import TrainConfig
from .training.device import resolve_device
from .training.fields import NONE, PLAIN_KINDS, Field, config_fields
from .training.presets import PRESETS, budget_decides, default_config
from .training.trainer import IterationRecord, Trainer, TrainResult

__all__ = ["MAX_SAMPLES", "MAX_THREADS", "build_parser", "config_from_args", "main"]

MAX_SAMPLES = 1_000_000
"""The most samples ``cnfviz sample -n`` draws in one call."""
MAX_THREADS = 1024


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        if message.endswith("expected one argument"):
            # argparse reads "-1e-5" as a flag, not a value.
            message += "; give a negative number with an equals sign, e.g. --atol=-1e-5"
        self.exit(2, f"cnfviz: error: {message} (see `{self.prog} --help`)\n")


def _param(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _add_flag(parser: argparse.ArgumentParser, f: Field) -> None:
    """The flag of one setting: its type, choices and help from the field table."""
    if f.kind == "bool":
        parser.add_argument(f.flag, action=argparse.BooleanOptionalAction, default=None, help=f.cli_help())
    elif f.kind == "choice":
        parser.add_argument(f.flag, choices=list(f.choices), help=f.cli_help())
    elif f.kind == "span":
        parser.add_argument(f.flag, nargs=2, type=f.cli_type(), metavar=("T0", "T1"), help=f.cli_help())
    else:
        metavar = f.metavar or (f"{f.dest.upper()}|{f.none}" if f.none else None)
        parser.add_argument(f.flag, type=f.cli_type(), metavar=metavar, help=f.cli_help())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnfviz", description="Train and sample FFJORD continuous normalizing flows.")
    # Subparsers are built with the parent's class, so their errors are one line as well.
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sweep,sample}")

    tr = sub.add_parser("train", help="train a flow; prints metrics and optionally writes JSON and a checkpoint")
    tr.add_argument(
        "--preset", choices=sorted(PRESETS), help="start from a named preset (seed = the DiffEqFlux tutorial)"
    )
    tr.add_argument("--config", metavar="JSON", help="start from a config JSON file (as written by --json)")
    tr.add_argument("--target", help=f"target name: {', '.join(TARGETS)}, or scipy:<name>")
    tr.add_argument(
        "--param", action="append", type=_param, default=[], metavar="KEY=VALUE", help="target parameter (repeatable)"
    )
    tr.add_argument("--data", metavar="CSV", help="train on samples from a CSV file with 1 or 2 numeric columns")
    for f in config_fields(kinds=PLAIN_KINDS):  # every setting's flag, from the one field table
        _add_flag(tr, f)
    tr.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    tr.add_argument("--save", metavar="PATH", help="write a checkpoint")
    tr.add_argument("--json", metavar="PATH", help="write metrics and config as JSON ('-' for stdout)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.add_argument(
        "--backend", choices=list(BACKENDS), help="where to train: this process (local, the default) or a Ray cluster"
    )
    tr.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help=f"the Ray head to train on (implies --backend ray; default ${RAY_ADDRESS_ENV})",
    )

    add_sweep_parser(sub, tr)

    sa = sub.add_parser("sample", help="draw samples from a trained checkpoint")
    sa.add_argument("--checkpoint", required=True, metavar="PATH")
    sa.add_argument("-n", type=int, default=1000)
    sa.add_argument("--out", metavar="CSV", help="write samples as CSV (default: stdout)")
    sa.add_argument("--seed", type=int, default=0)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Fold the flags over the preset, config file or per-target defaults into one TrainConfig."""
    params = dict(args.param)
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as fh:
                text = fh.read(_MAX_CONFIG_BYTES + 1)
        except OSError as err:
            raise ConfigError(f"cannot read config {args.config}: {err.strerror}", field="--config") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config {args.config} is not UTF-8 text: expected JSON", field="--config") from None
        if len(text) > _MAX_CONFIG_BYTES:
            raise ConfigError(f"config {args.config} is larger than {_MAX_CONFIG_BYTES:,} characters", field="--config")
        cfg = TrainConfig.from_json(text)
    elif args.preset:
        cfg = PRESETS[args.preset].config
    elif args.data:
        cfg = default_config("normal" if _data_dim(args) == 1 else "8gaussians").replace(target="samples", n_train=None)
    else:
        cfg = default_config(args.target or "normal", params)
    changes: dict[str, Any] = {}
    if args.target and args.target != cfg.target:
        changes["target"] = args.target
        changes["target_params"] = params
    elif params:
        changes["target_params"] = {**cfg.target_params, **params}
    if args.data:
        changes["target"] = "samples"
    for f in config_fields(kinds=PLAIN_KINDS):
        value = getattr(args, f.dest, None)
        if value is None:  # not given
            continue
        if value is NONE or (f.zero_none and value == 0):
            value = None
        elif f.kind == "span":
            value = tuple(value)
        for key, change in f.change(value).items():
            if isinstance(change, dict):
                changes.setdefault(key, {}).update(change)
            else:
                changes[key] = change
    cfg = cfg.replace(**changes) if changes else cfg
    return budget_decides(cfg) if args.max_seconds is not None and args.adam_iters is None else cfg


def _data_dim(args: argparse.Namespace) -> int:
    return _data(args.data).shape[1]


_MAX_CONFIG_BYTES = 1_000_000


def _data(path: str) -> np.ndarray:
    """The samples of ``--data``: a file, never text (a missing file is said as missing, not parsed)."""
    if not os.path.isfile(path):
        why = "is a directory" if os.path.isdir(path) else "not found"
        raise ConfigError(f"--data file {why}: {path}", field="--data", allowed="a CSV file")
    return samples_from_csv(path)


class _Progress:
    """A one-line progress bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, total: int, budget: float | None, enabled: bool) -> None:
        self.total, self.budget, self.enabled = total, budget, enabled
        self._last = 0.0

    def __call__(self, rec: IterationRecord) -> None:
        self.draw(rec.iteration, rec.stage, rec.loss, rec.nfe_forward, rec.elapsed)

    def draw(self, iteration: int, stage: str, loss: float, nfe_forward: int, elapsed: float) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self._last < 0.1:
            return
        self._last = now
        frac = iteration / self.total if self.total else 0.0
        if self.budget:
            frac = max(frac, elapsed / self.budget)
        frac = min(frac, 1.0)
        bar = "#" * int(frac * 30)
        sys.stderr.write(
            f"\r[{bar:<30}] {iteration:>6} it  {stage:<5}  loss {loss:8.4f}  nfe {nfe_forward:>7}  {elapsed:6.1f}s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    target = None
    if cfg.target == "samples":
        if not args.data:
            raise ConfigError('target "samples" needs --data CSV')
        from .targets import SamplesTarget

        target = SamplesTarget(_data(args.data))
    for path, flag in ((args.save, "--save"), (args.json, "--json")):
        if path:
            check_writable(path, flag)
    check_run(cfg, target.dim if target is not None else _config_dim(cfg), RunBudget.for_cli())
    if args.threads is not None:
        torch.set_num_threads(check_int_range(args.threads, "--threads", lo=1, hi=MAX_THREADS))
    else:
        configure_threads(1)
    progress = _Progress(
        cfg.adam_iters + cfg.lbfgs_iters, cfg.max_seconds, enabled=not args.quiet and sys.stderr.isatty()
    )
    backend = cli_backend(args.backend, args.ray_address)
    if backend.name == "ray":
        result, model, out = _train_remote(backend, cfg, target, progress)
    else:
        warm_up()  # torch's one-time imports, so they do not count as training time
        trainer = Trainer(cfg, target=target, callback=progress)
        result = trainer.run()
        progress.close()
        model = trainer.model
        out = {
            **LocalBackend().describe(),
            **result.summary(),
            **run_placement(trainer),
            "device": str(trainer.device),
            "config": cfg.to_dict(),
            "parameters": trainer.model.num_parameters,
            "notes": trainer.notes,
        }
    if args.save:
        data = target.sample(min(cfg.n_test, 10_000), seed=0) if cfg.target == "samples" and target else None
        try:
            save_checkpoint(args.save, model, cfg, extra=result.summary(), target_data=data)
        except (OSError, RuntimeError) as err:  # torch reports a full disk or a vanished folder as RuntimeError
            raise ConfigError(f"cannot write --save {args.save}: {_first_line(err)}", field="--save") from None
    if args.json:
        text = json.dumps(out, indent=2, default=float)
        if args.json == "-":
            print(text)
        else:
            try:
                with open(args.json, "w") as fh:
                    fh.write(text + "\n")
            except OSError as err:
                raise ConfigError(f"cannot write --json {args.json}: {err.strerror or err}", field="--json") from None
    m = result.metrics
    line = f"{result.status}: {result.reason}; {result.iterations} iterations in {result.train_seconds:.2f}s"
    if m is not None:
        line += f"; seed_tv {m.seed_tv:.4f}, tv {m.tv:.4f}, test_nll {m.test_nll:.4f}, ∫p {m.integral:.4f}"
        if m.sample_nfe is not None:
            line += f", sampling NFE {m.sample_nfe}"
    print(line, file=sys.stderr if args.json == "-" else sys.stdout)
    return 0 if result.status != "failed" else 1


def _train_remote(
    backend: Backend, cfg: TrainConfig, target: Target | None, progress: _Progress
) -> tuple[TrainResult, FFJORD, dict[str, Any]]:
    """Train on ``backend`` through a job handle, drawing progress from its snapshots."""
    job = backend.submit(cfg, target=target).start()
    try:
        while job.alive:
            snap = job.snapshot()
            if snap.loss is not None:
                progress.draw(snap.iteration, snap.stage, snap.loss, snap.nfe_forward, snap.elapsed)
            job.join(0.2)
        snap = job.snapshot()
    except BaseException:  # Ctrl-C: stop the remote run too, it would train on for nobody
        close = getattr(job, "close", None)
        if close is not None:
            close()
        raise
    progress.close()
    result = job.result
    if result is None:  # the handle lost its run without a result: say what its last snapshot knew
        why = snap.reason or "the run ended without a result"
        result = TrainResult("failed", why, snap.iteration, snap.elapsed, 0.0)
    model = job.model
    out = {
        **backend.describe(),
        **run_record(job),
        "device": getattr(job, "device", "cpu"),
        "config": cfg.to_dict(),
        "parameters": model.num_parameters,
        "notes": list(snap.notes),
    }
    return result, model, out


def _sample(args: argparse.Namespace) -> int:
    if not 1 <= args.n <= MAX_SAMPLES:
        raise ConfigError(f"-n must be between 1 and {MAX_SAMPLES:,} (got {args.n:,})", field="-n")
    check_int_range(args.seed, "--seed", lo=0, hi=2**63 - 1)
    if args.out:
        check_writable(args.out, "--out")
    model, _, _ = load_checkpoint(args.checkpoint, device=resolve_device("auto"))
    x = model.sample(args.n, generator=torch.Generator().manual_seed(args.seed)).cpu().numpy()
    header = ",".join(f"x{i + 1}" for i in range(x.shape[1]))
    if args.out:
        try:
            np.savetxt(args.out, x, delimiter=",", header=header, comments="")
        except OSError as err:
            raise ConfigError(f"cannot write --out {args.out}: {err.strerror or err}", field="--out") from None
        print(f"wrote {args.n} samples to {args.out}")
    else:
        np.savetxt(sys.stdout, x, delimiter=",", header=header, comments="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "sweep":
            return run_sweep(parser._subparsers._group_actions[0].choices["train"], args, config_from_args)
        return _train(args) if args.command == "train" else _sample(args)
    except ConfigError as err:
        parser.exit(2, f"cnfviz: error: {_one_line(err)}\n")
    except KeyboardInterrupt:
        parser.exit(130, "cnfviz: interrupted\n")
    except OSError as err:
        parser.exit(2, f"cnfviz: error: {_first_line(err)}\n")
    except (ValueError, OverflowError, RecursionError, MemoryError) as err:
        # Bad input that slipped past a check still ends in one line, never a traceback.
        parser.exit(2, f"cnfviz: error: {type(err).__name__}: {_first_line(err)}\n")
    return 0


def _one_line(err: BaseException) -> str:
    """The whole message on one line: a value it quotes (a path, a cell) may hold line breaks."""
    return printable(" ".join(str(err).splitlines()))  # and no character may hide or turn the text around


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line if len(line) <= 300 else line[:300] + "…"


def _config_dim(cfg: TrainConfig) -> int:
    return run_dim(cfg) or 2


if __name__ == "__main__":
    raise SystemExit(main())
