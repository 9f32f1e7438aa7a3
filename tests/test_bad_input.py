"""The bad-input corpus: every way in (the controls, the command line, a link, an upload) turns garbage into a
clear message that names the field and what is allowed, never a traceback, and the session stays usable.

Each channel is one table of cases with ids, run by one test:

* controls: the config objects themselves (``controls-*``), and the Train page's widgets (``ui-*``);
* CLI: ``cnfviz.cli.main`` in-process (exit status 2, one line on stderr), plus one real subprocess;
* URLs: the Train page opened on a link (a notice names the parameter, quotes its value escaped, and the
  defaults stand in);
* uploads: CSV files, pictures and checkpoints on the Train page.

Messages are compared as the reader sees them: Streamlit elements hold markdown, in which user text is
backslash-escaped (:func:`cnfviz.ui.text.plain`), so :func:`seen` undoes the escapes first.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnfviz import ConfigError, TrainConfig, Trainer, default_config, make_target
from cnfviz.cli import main
from cnfviz.targets import SamplesTarget
from cnfviz.training.checkpoint import checkpoint_bytes
from cnfviz.training.presets import DEFAULT_TARGET
from cnfviz.ui.text import plain
from tests.apptest import ROOT, TRAIN, fresh_caches, wait_for  # noqa: F401 - fresh_caches is an autouse fixture

TEXT_ELEMENTS = ("error", "warning", "info", "success", "caption", "markdown", "code", "text", "exception", "toast")


def seen(markdown: str) -> str:
    """What a reader sees of an element's markdown: backslash escapes undone, hard line breaks as newlines."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown.replace("  \n", "\n"))


def page_text(at: AppTest) -> str:
    """Every message on the page (main area and sidebar), as markdown."""
    return "\n".join(str(el.value) for kind in TEXT_ELEMENTS for el in at.get(kind) if hasattr(el, "value"))


def assert_clean(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert "Traceback" not in page_text(at)


def messages(at: AppTest, kind: str = "error") -> list[str]:
    return [seen(el.value) for el in at.get(kind)]


def assert_says(at: AppTest, fragments: tuple[str, ...], kind: str = "error") -> str:
    """One ``kind`` element holds every fragment (as seen); returns it."""
    shown = messages(at, kind)
    for message in shown:
        if all(f in message for f in fragments):
            return message
    pytest.fail(f"no {kind} says {fragments}; the page shows {shown}")


def open_train(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(TRAIN, default_timeout=60)
    if query:
        at.query_params.update(query)
    at.run()
    assert_clean(at)
    return at


def train_briefly(at: AppTest) -> None:
    """The session still trains: a few iterations of a 1D run end "Done" with metrics."""
    if at.selectbox(key="train_target").value != "normal":
        at.selectbox(key="train_target").set_value("normal").run()
    at.button(key="train_preset_default").click().run()
    at.number_input(key="train_adam_iters").set_value(3).run()
    assert not at.button(key="train_train_button").disabled, messages(at)
    at.button(key="train_train_button").click().run()
    wait_for(at, lambda a: bool(a.get("table")) and bool(a.success or a.error))
    assert_clean(at)
    assert any("Done" in s for s in messages(at, "success")), messages(at)


# ==================================================================================================
# Controls: the config objects the sidebar, the CLI and the links all build
# ==================================================================================================


@dataclass(frozen=True)
class Build:
    """Building something from bad values raises a ConfigError with every fragment; ``good`` builds fine."""

    bad: Callable[[], Any]
    fragments: tuple[str, ...]
    good: Callable[[], Any]


def _config(**kwargs: Any) -> Callable[[], TrainConfig]:
    return lambda: TrainConfig(target="normal", **kwargs)


CONTROL_CASES = {
    "controls-width-0": Build(
        _config(model={"hidden": (0,)}), ("model.hidden[0]", "[1, 1024]", "got 0"), _config(model={"hidden": (1,)})
    ),
    "controls-width-enormous": Build(
        _config(model={"hidden": (5000, 64)}),
        ("model.hidden[0]", "[1, 1024]", "got 5000"),
        _config(model={"hidden": (1024, 64)}),
    ),
    "controls-depth-over-8": Build(
        _config(model={"hidden": (8,) * 9}),
        ("model.hidden", "at most 8 layers", "got 9"),
        _config(model={"hidden": ()}),
    ),
    "controls-t0-equals-t1": Build(
        _config(model={"tspan": (1.0, 1.0)}), ("model.tspan", "t0 != t1"), _config(model={"tspan": (0.0, 1.0)})
    ),
    "controls-rtol-nan": Build(
        _config(solver={"rtol": float("nan")}),
        ("solver.rtol", "finite number in (0, 1]"),
        _config(solver={"rtol": 1e-5}),
    ),
    "controls-atol-inf": Build(
        _config(solver={"atol": float("inf")}),
        ("solver.atol", "finite number in (0, 1]"),
        _config(solver={"atol": 1e-5}),
    ),
    "controls-rtol-negative": Build(
        _config(solver={"rtol": -1e-3}), ("solver.rtol", "in (0, 1]", "got -0.001"), _config(solver={"rtol": 1e-3})
    ),
    "controls-lr-zero": Build(_config(lr=0.0), ("lr must be in (0, 10]", "got 0.0"), _config(lr=1e-3)),
    "controls-lr-nan": Build(_config(lr=float("nan")), ("lr must be a finite number in (0, 10]",), _config(lr=1e-3)),
    "controls-batch-over-n-train": Build(
        _config(batch_size=512, n_train=100),
        ("batch_size (512) cannot exceed n_train (100)", "use at most 100"),
        _config(batch_size=100, n_train=100),
    ),
    "controls-iterations-0": Build(
        _config(adam_iters=0, lbfgs_iters=0), ("adam_iters + lbfgs_iters must be at least 1",), _config(adam_iters=1)
    ),
    "controls-unknown-solver": Build(
        _config(solver={"method": "tsit5"}), ('Invalid solver "tsit5"', "Must be one of", "dopri5"), _config()
    ),
    "controls-unknown-target": Build(
        lambda: make_target("unicorns"),
        ('Invalid target "unicorns"', "Must be one of", "moons"),
        lambda: make_target("moons"),
    ),
    "controls-scipy-gamma-negative-shape": Build(
        lambda: make_target("scipy:gamma", {"a": -1}),
        ("scipy:gamma", "rejects the shape parameter(s) a=-1"),
        lambda: make_target("scipy:gamma", {"a": 2}),
    ),
    "controls-scipy-discrete": Build(
        lambda: make_target("scipy:poisson"),
        ("scipy.stats.poisson is a discrete distribution", "targets must be continuous", "scipy:gamma"),
        lambda: make_target("scipy:norm"),
    ),
    "controls-scipy-unknown": Build(
        lambda: make_target("scipy:gaussian"),
        ('Unknown scipy.stats distribution "gaussian"', "scipy:<name>"),
        lambda: make_target("scipy:norm"),
    ),
}


@pytest.mark.parametrize("case", list(CONTROL_CASES.values()), ids=list(CONTROL_CASES))
def test_controls_refuse_bad_values_by_name(case: Build):
    with pytest.raises(ConfigError) as err:
        case.bad()
    for fragment in case.fragments:
        assert fragment in str(err.value), str(err.value)
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)
    assert case.good() is not None, "the corrected value builds"


# --------------------------------------------------------------------------------------------------
# The same through the Train page's widgets
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Widgets:
    """Set widgets on a fresh Train page; the page then shows an error with every fragment."""

    steps: tuple[tuple[str, str, Any], ...]  # (kind, key, value); kind "click" clicks the button
    fragments: tuple[str, ...]


def _apply(at: AppTest, steps: tuple[tuple[str, str, Any], ...]) -> None:
    for kind, key, value in steps:
        if kind == "click":
            at.button(key=key).click().run()
        elif kind == "uncheck":
            at.checkbox(key=key).uncheck().run()
        else:
            getattr(at, kind)(key=key).set_value(value).run()
        assert_clean(at)


UI_CASES = {
    "ui-t0-equals-t1": Widgets((("number_input", "train_t1", 0.0),), ("t0 ≠ t1", "both are 0")),
    "ui-rtol-zero": Widgets(
        (("selectbox", "train_solver", "dopri5"), ("number_input", "train_rtol", 0.0)),
        ("solver.rtol must be in (0, 1]", "got 0.0"),
    ),
    "ui-lr-zero": Widgets((("number_input", "train_lr", 0.0),), ("lr must be in (0, 10]", "got 0.0")),
    "ui-batch-over-n-train": Widgets(
        (
            ("selectbox", "train_preset", "seed"),
            ("click", "train_preset_apply", None),
            ("uncheck", "train_full_batch", None),
            ("number_input", "train_batch", 512),
        ),
        ("batch_size (512) cannot exceed n_train (100)", "use at most 100"),
    ),
    "ui-iterations-0": Widgets(
        (("number_input", "train_adam_iters", 0), ("number_input", "train_lbfgs_iters", 0)),
        ("adam_iters + lbfgs_iters must be at least 1",),
    ),
    "ui-scipy-gamma-negative-shape": Widgets(
        (("selectbox", "train_target", "scipy:gamma"), ("text_input", "train_param_scipy_gamma_a", "-1")),
        ("scipy:gamma", "a=-1"),
    ),
    "ui-scipy-shape-not-a-number": Widgets(
        (("selectbox", "train_target", "scipy:gamma"), ("text_input", "train_param_scipy_gamma_a", "two")),
        ("a", "number"),
    ),
}


@pytest.mark.parametrize("case", list(UI_CASES.values()), ids=list(UI_CASES))
def test_the_train_page_says_what_is_wrong_and_recovers(case: Widgets):
    at = open_train()
    _apply(at, case.steps)
    assert_says(at, case.fragments)
    assert at.button(key="train_train_button").disabled, "no run from invalid settings"
    # Fast defaults put every control back in range, and Train works again.
    at.button(key="train_preset_default").click().run()
    assert_clean(at)
    assert not at.error, messages(at)
    assert not at.button(key="train_train_button").disabled


def test_ui_depth_0_is_an_affine_field_and_says_so():
    at = open_train()
    at.selectbox(key="train_target").set_value("normal").run()
    at.slider(key="train_depth").set_value(0).run()
    assert_clean(at)
    assert at.session_state["train__config"].model.hidden == ()
    assert not at.error and not at.button(key="train_train_button").disabled, "depth 0 is allowed"
    (caption,) = [c for c in messages(at, "caption") if "affine" in c]
    assert "Gaussian" in caption, caption
    at.number_input(key="train_adam_iters").set_value(3).run()
    at.button(key="train_train_button").click().run()
    wait_for(at, lambda a: bool(a.get("table")) and bool(a.success or a.error))
    assert_clean(at)
    assert any("Done" in s for s in messages(at, "success"))


def test_ui_width_slider_stays_in_range():
    at = open_train()
    for value in (0, 10**6):
        at.slider(key="train_width").set_value(value).run()
        assert_clean(at)
        assert 1 <= at.slider(key="train_width").value <= 256
        assert all(1 <= w <= 256 for w in at.session_state["train__config"].model.hidden)


# ==================================================================================================
# The command line
# ==================================================================================================


@pytest.fixture(scope="module")
def tiny_flow() -> Trainer:
    cfg = TrainConfig(
        target="normal",
        model={"hidden": (4,)},
        solver={"method": "rk4", "step_size": 0.25},
        adam_iters=2,
        eval_every=0,
        batch_size=16,
        n_test=50,
    )
    trainer = Trainer(cfg)
    trainer.run(final_metrics=False)
    return trainer


class _Payload:
    """Unpickling this runs ``touch <path>``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def _resaved(trainer: Trainer, change: Callable[[dict], None], **kwargs: Any) -> bytes:
    payload = torch.load(io.BytesIO(checkpoint_bytes(trainer.model, trainer.config, **kwargs)), weights_only=True)
    change(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict], None]:
    def change(payload: dict) -> None:
        node = payload
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return change


def _poison(payload: dict) -> None:
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = torch.full_like(payload["state_dict"][name], float("nan"))


def _pickled_payload(marker: str) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": "cnfviz-checkpoint-v1", "state_dict": _Payload(marker)}, buf)
    return buf.getvalue()


# A bad checkpoint, from a trained one and a marker path (that a payload would create): its bytes.
BAD_CHECKPOINTS: dict[str, tuple[Callable[[Trainer, str], bytes], tuple[str, ...]]] = {
    "other-config": (
        lambda t, _: _resaved(t, _set(("config", "model", "hidden"), [16, 16])),
        ("weights do not match its config", "dim 1, model.hidden (16, 16)", "where (16, 1) is expected"),
    ),
    "truncated": (
        lambda t, _: checkpoint_bytes(t.model, t.config)[:1500],
        ("cut short or damaged", "1,500 bytes", "copy it again"),
    ),
    "pickle-payload": (
        lambda _, marker: _pickled_payload(marker),
        ("refused to load the checkpoint", "contains code", "system", "never runs code from a file"),
    ),
    "random-bytes": (
        lambda *_: np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        ("not a readable cnfviz checkpoint", "unrecognised binary data", "expected a cnfviz checkpoint (.pt)"),
    ),
    "invalid-config": (
        lambda t, _: _resaved(t, _set(("config", "lr"), -1.0)),
        ("checkpoint config: lr must be in (0, 10]", "got -1.0"),
    ),
    "nan-weights": (lambda t, _: _resaved(t, _poison), ("weights hold NaN or infinite values", "diverged")),
    "wrong-dim": (lambda t, _: _resaved(t, _set(("dim",), 2)), ("checkpoint dim is 2", "target normal is 1D")),
}


@dataclass(frozen=True)
class Cli:
    argv: tuple[str, ...]
    fragments: tuple[str, ...]
    file: str | None = None  # a BAD_CHECKPOINTS name, or "csv:<content>", written to a temporary file as {file}


CLI_CASES = {
    "cli-width-0": Cli(("train", "--hidden", "0"), ("model.hidden[0] must be an integer in [1, 1024]", "got 0")),
    "cli-width-enormous": Cli(("train", "--hidden", "64,5000"), ("model.hidden[1]", "[1, 1024]", "got 5000")),
    "cli-width-not-a-list": Cli(("train", "--hidden", "wide"), ("--hidden", "expected widths like 64,64,64")),
    "cli-t0-equals-t1": Cli(("train", "--tspan", "2", "2"), ("model.tspan must have t0 != t1",)),
    "cli-rtol-nan": Cli(("train", "--solver", "dopri5", "--rtol", "nan"), ("solver.rtol", "finite number in (0, 1]")),
    "cli-atol-negative": Cli(("train", "--atol=-1e-5"), ("solver.atol must be in (0, 1]",)),
    "cli-negative-without-equals": Cli(("train", "--rtol", "-1e-5"), ("--rtol", "with an equals sign")),
    "cli-lr-zero": Cli(("train", "--lr", "0"), ("lr must be in (0, 10]", "got 0.0")),
    "cli-batch-over-n-train": Cli(
        ("train", "--batch", "512", "--n-train", "100"), ("batch_size (512) cannot exceed n_train (100)",)
    ),
    "cli-iterations-0": Cli(
        ("train", "--adam-iters", "0", "--lbfgs-iters", "0"), ("adam_iters + lbfgs_iters must be at least 1",)
    ),
    "cli-iterations-not-a-number": Cli(("train", "--adam-iters", "lots"), ("--adam-iters", "invalid int value")),
    "cli-unknown-solver": Cli(("train", "--solver", "tsit5"), ("--solver", "invalid choice: 'tsit5'", "dopri5")),
    "cli-unknown-target": Cli(("train", "--target", "unicorns"), ('Invalid target "unicorns"', "moons")),
    "cli-scipy-discrete": Cli(("train", "--target", "scipy:poisson"), ("discrete distribution", "continuous")),
    "cli-scipy-bad-shape": Cli(("train", "--target", "scipy:gamma", "--param", "a=-1"), ("scipy:gamma", "a=-1")),
    "cli-param-not-key-value": Cli(("train", "--param", "loc"), ("--param", "expected KEY=VALUE")),
    "cli-unknown-flag": Cli(("train", "--widht", "3"), ("unrecognized arguments: --widht",)),
    "cli-data-three-columns": Cli(("train", "--data", "{file}"), ("CSV has 3 columns", "1 or 2"), "csv:1,2,3\n"),
    "cli-sample-missing-checkpoint": Cli(("sample", "--checkpoint", "/nonexistent/flow.pt"), ("checkpoint not found",)),
    "cli-sample-garbage-checkpoint": Cli(
        ("sample", "--checkpoint", "{file}"), ("not a readable cnfviz checkpoint",), "random-bytes"
    ),
    "cli-sample-truncated-checkpoint": Cli(
        ("sample", "--checkpoint", "{file}"), ("cut short or damaged",), "truncated"
    ),
    "cli-sample-payload-checkpoint": Cli(
        ("sample", "--checkpoint", "{file}"), ("refused to load the checkpoint",), "pickle-payload"
    ),
    "cli-sample-n-0": Cli(("sample", "--checkpoint", "x.pt", "-n", "0"), ("-n must be between 1 and 1,000,000",)),
}


def _cli_file(case: Cli, tmp_path: Any, trainer: Trainer, marker: str) -> str:
    path = tmp_path / "input"
    if case.file.startswith("csv:"):
        path.write_text(case.file[4:] * 20)
    else:
        path.write_bytes(BAD_CHECKPOINTS[case.file][0](trainer, marker))
    return str(path)


@pytest.mark.parametrize("case", list(CLI_CASES.values()), ids=list(CLI_CASES))
def test_the_cli_prints_one_line_and_exits_2(case: Cli, tmp_path, tiny_flow, capsys):
    marker = tmp_path / "pwned"
    argv = list(case.argv)
    if case.file is not None:
        argv = [a.replace("{file}", _cli_file(case, tmp_path, tiny_flow, str(marker))) for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert err.startswith("cnfviz: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and not out
    for fragment in case.fragments:
        assert fragment in err, err
    assert not marker.exists(), "a payload never runs"


def test_the_cli_still_works_after_bad_input_in_a_real_process(tmp_path, tiny_flow):
    garbage = tmp_path / "flow.pt"
    garbage.write_bytes(b"\x00\x01 not a checkpoint")
    bad = subprocess.run(
        [sys.executable, "-m", "cnfviz", "sample", "--checkpoint", str(garbage)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1 and "not a readable cnfviz checkpoint" in bad.stderr
    good = tmp_path / "good.pt"
    good.write_bytes(checkpoint_bytes(tiny_flow.model, tiny_flow.config))
    assert main(["sample", "--checkpoint", str(good), "-n", "5", "--out", str(tmp_path / "s.csv")]) == 0
    assert np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1).shape == (5,)


# ==================================================================================================
# Links
# ==================================================================================================


@dataclass(frozen=True)
class Link:
    query: dict[str, str]
    fragments: tuple[str, ...]  # what the notice says (as seen)
    target: str = DEFAULT_TARGET  # whose defaults stand in
    escaped: str | None = None  # a value that must appear escaped, never as markdown


URL_CASES = {
    "url-width-1e9": Link({"hidden": str(10**9)}, ('"hidden=1000000000"', "model.hidden[0]", "[1, 1024]")),
    "url-width-0": Link({"hidden": "0"}, ('"hidden=0"', "[1, 1024]")),
    "url-widths-garbage": Link({"hidden": "64,x"}, ('"hidden=64,x"', "whole numbers separated by commas")),
    "url-iterations-1e300": Link({"adam": "1e300"}, ('"adam=1e300"', "expected a whole number")),
    "url-n-train-1e300": Link({"ntrain": "1e300"}, ('"ntrain=1e300"', "whole number such as 256, or fresh")),
    "url-lr-huge": Link({"lr": "1e300"}, ('"lr=1e300"', "lr must be in (0, 10]")),
    "url-rtol-nan": Link({"rtol": "nan"}, ('"rtol=nan"', "solver.rtol", "finite number")),
    "url-t0-equals-t1": Link({"tspan": "1,1"}, ('"tspan=1,1"', "t0 != t1")),
    "url-100kB-value": Link({"lr": "9" * 100_000}, ('"lr"', "100,000 characters long", "the limit is 1,000")),
    "url-unknown-key": Link({"n": "1e300"}, ('Unknown setting "n"', "settings are preset, target")),
    "url-unknown-solver": Link({"solver": "tsit5"}, ('"solver=tsit5"', 'Invalid solver "tsit5"', "dopri5")),
    "url-markdown-injection": Link(
        {"target": "**x**<script>"}, ('Invalid target "**x**<script>"', "Must be one of"), escaped="**x**<script>"
    ),
    "url-link-injection": Link(
        {"target": "[x](http://e.example)"},
        ('Invalid target "[x](http://e.example)"',),
        escaped="[x](http://e.example)",
    ),
    "url-hide-injection": Link(
        {"hide": "`code`:red[x]"}, ('Cannot hide unknown control "`code`:red[x]"',), escaped="`code`:red[x]"
    ),
    "url-scipy-discrete": Link({"target": "scipy:poisson"}, ("Ignored target", "discrete distribution")),
    "url-scipy-unknown": Link({"target": "scipy:nope"}, ("Ignored target", 'Unknown scipy.stats distribution "nope"')),
    "url-scipy-bad-shape": Link(
        {"target": "scipy:gamma", "p.a": "-1"}, ("Ignored target parameters", "a=-1"), target="scipy:gamma"
    ),
}


@pytest.mark.parametrize("case", list(URL_CASES.values()), ids=list(URL_CASES))
def test_a_bad_link_names_the_parameter_and_falls_back(case: Link):
    at = open_train(case.query)
    (warning,) = at.warning
    assert "ignored" in warning.value
    for fragment in case.fragments:
        assert fragment in seen(warning.value), warning.value
    if case.escaped is not None:
        assert plain(case.escaped) in warning.value, "the value is shown escaped"
        assert case.escaped not in warning.value, "never as markdown"
    assert len(warning.value) < 2_000, "a long value is cut"
    config = at.session_state["train__config"]
    # The sidebar spells out the target's parameters (a required scipy shape gets scipy's example value).
    assert config.replace(target_params={}) == default_config(case.target), "the defaults stand in"
    assert all(str(v) not in case.query.get(f"p.{k}", "") for k, v in config.target_params.items())
    assert not at.error and not at.button(key="train_train_button").disabled
    at.button(key="train_link_notices_dismiss").click().run()
    assert_clean(at)
    assert not at.warning


def test_a_page_opened_on_garbage_still_trains():
    at = open_train({"lr": "x" * 100_000, "target": "**x**<script>", "hidden": str(10**9), "wat": "1"})
    assert at.warning
    train_briefly(at)


# ==================================================================================================
# Uploads
# ==================================================================================================


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels in a few dozen bytes (a "decompression bomb")."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


GOOD_CSV = b"x,y\n" + b"\n".join(f"{a:.4f},{b:.4f}".encode() for a, b in np.random.default_rng(0).normal(size=(60, 2)))


@dataclass(frozen=True)
class Upload:
    source: str  # the target picker's entry (samples, image), or "checkpoint"
    name: str
    content: Callable[[Trainer, str], bytes]
    fragments: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)


def _csv(content: bytes) -> Callable[[Trainer, str], bytes]:
    return lambda *_: content


UPLOAD_CASES = {
    "csv-empty": Upload("samples", "data.csv", _csv(b""), ("CSV is empty", "1 or 2 numeric columns")),
    "csv-one-row": Upload("samples", "data.csv", _csv(b"x,y\n1.0,2.0\n"), ("at least 10 data rows", "got 1")),
    "csv-text": Upload(
        "samples",
        "notes.csv",
        _csv(b"Dear diary,\nToday I trained a flow.\nIt went well.\n"),
        ("line 2, column 1", "'Today I trained a flow.' is not a number", "such as 1.5"),
    ),
    "csv-nan": Upload(
        "samples", "data.csv", _csv(b"x,y\n" + b"1,2\n" * 12 + b"nan,3\n"), ("line 14, column 1", "'nan' is not finite")
    ),
    "csv-inf": Upload(
        "samples", "data.csv", _csv(b"x\n" + b"1\n2\n" * 12 + b"-inf\n"), ("line 26", "'-inf' is not finite")
    ),
    "csv-three-columns": Upload(
        "samples", "data.csv", _csv(b"a,b,c\n" + b"1,2,3\n" * 20), ("CSV has 3 columns", "expected 1 or 2")
    ),
    "csv-semicolons-decimal-commas": Upload(
        "samples",
        "data.csv",
        _csv(b"x;y\n" + b"1,5;2,5\n" * 20),
        ("line 2, column 1", "'1,5' is not a number", "write 1.5"),
    ),
    "csv-pipes": Upload(
        "samples", "data.csv", _csv(b"1|2\n" * 20), ("'1|2' is not a number", "a comma, a semicolon, a tab or spaces")
    ),
    "csv-1e7-rows": Upload(
        "samples", "big.csv", _csv(b"1.0,2.0\n" * 10**7), ("larger than the limit of 5,000,000 bytes (5 MB)",)
    ),
    "csv-too-many-rows": Upload(
        "samples", "rows.csv", _csv(b"1,2\n" * 200_000), ("200,000 data rows", "the limit is 100,000")
    ),
    "csv-over-size-cap": Upload(
        "samples", "wide.csv", _csv(b"0.123456789,0.987654321\n" * 250_000), ("larger than the limit of 5,000,000",)
    ),
    "csv-markdown-name-and-cell": Upload(
        "samples", "[x](http://e).csv", _csv(b"x\n" + b"**b**\n" * 12), ("'**b**' is not a number",)
    ),
    "image-text-named-png": Upload(
        "image", "picture.png", _csv(b"hello, I am text" * 10), ("not a readable image", "PNG, JPEG, GIF, BMP or WebP")
    ),
    "image-zero-bytes": Upload("image", "empty.png", _csv(b""), ("picture file is empty (0 bytes)",)),
    "image-zero-size": Upload("image", "zero.png", _csv(_png_header(0, 0)), ("not a readable image",)),
    "image-huge": Upload(
        "image", "huge.png", _csv(_png_header(10_000, 10_000)), ("10,000 × 10,000 pixels", "limit is 25,000,000 pixels")
    ),
    "image-bomb": Upload(
        "image", "bomb.png", _csv(_png_header(100_000, 100_000)), ("10,000,000,000 pixels", "limit is 25,000,000")
    ),
    "image-all-black": Upload(
        "image", "night.png", _csv(_png(np.zeros((8, 8)))), ("black everywhere", "tick the box", "no mass")
    ),
    **{
        f"checkpoint-{name}": Upload("checkpoint", f"{name}.pt", content, fragments)
        for name, (content, fragments) in BAD_CHECKPOINTS.items()
    },
    "checkpoint-markdown-name": Upload(
        "checkpoint", "**b**[x](http://e).pt", _csv(b"plain text"), ("Could not load **b**[x](http://e).pt",)
    ),
    "checkpoint-custom-data-missing": Upload(
        "checkpoint",
        "samples.pt",
        lambda t, _: checkpoint_bytes(t.model, t.config.replace(target="samples")),
        ("trained on your own data", "does not carry it"),
    ),
}

_UPLOADERS = {"samples": "train_csv_upload", "image": "train_image_upload", "checkpoint": "train_checkpoint_upload"}
_GOOD = {
    "samples": ("good.csv", GOOD_CSV),
    "image": ("good.png", _png(np.pad(np.zeros((8, 8)), 8, constant_values=255))),
}


@pytest.mark.parametrize("case", list(UPLOAD_CASES.values()), ids=list(UPLOAD_CASES))
def test_a_bad_upload_says_why_and_the_page_goes_on(case: Upload, tiny_flow, tmp_path):
    marker = tmp_path / "pwned"
    at = open_train()
    if case.source != "checkpoint":
        at.selectbox(key="train_target").set_value(case.source).run()
    before = at.session_state["train__config"]
    uploader = at.file_uploader(key=_UPLOADERS[case.source])
    uploader.set_value((case.name, case.content(tiny_flow, str(marker)), "application/octet-stream")).run()
    assert_clean(at)
    message = assert_says(at, case.fragments)
    assert not marker.exists(), "a payload never runs"
    if "[x](http://e)" in case.name:
        assert "[x](http://e)" not in "".join(e.value for e in at.error), "a name is never a link"
    if case.source == "checkpoint":
        assert message.startswith(f"Could not load {case.name}: ")
        assert at.session_state["train__config"] == before, "the sidebar keeps its settings"
        assert not at.button(key="train_train_button").disabled
        assert at.session_state.get("train__drawn", (None,))[0] is None, "no run was started"
    else:
        assert at.button(key="train_train_button").disabled
        name, good = _GOOD[case.source]
        at.file_uploader(key=_UPLOADERS[case.source]).set_value((name, good, "application/octet-stream")).run()
        assert_clean(at)
        assert not at.error, messages(at)
        assert not at.button(key="train_train_button").disabled, "a good file after a bad one trains"


def test_a_bad_checkpoint_then_a_good_one_shows_the_model(tiny_flow):
    at = open_train()
    at.file_uploader(key="train_checkpoint_upload").set_value(("junk.pt", b"junk", "application/octet-stream")).run()
    assert at.error
    good = checkpoint_bytes(tiny_flow.model, tiny_flow.config)
    at.file_uploader(key="train_checkpoint_upload").set_value(("flow.pt", good, "application/octet-stream")).run()
    assert_clean(at)
    assert not at.error, messages(at)
    wait_for(at, lambda a: bool(a.get("table")) and any("from a checkpoint" in s for s in messages(a, "success")))
    config = at.session_state["train__config"]
    assert config == tiny_flow.config.replace(target_params={"loc": 6.0, "scale": 0.7}), "normal's defaults, spelt out"
    assert not at.warning, "the controls match the loaded run: no question whether to discard it"
    assert [s for s in messages(at, "success") if "loaded from a checkpoint" in s]


def test_samples_csv_honours_its_byte_and_row_caps_in_memory():
    """The library reader stops at the byte cap before parsing: 10**7 rows (80 MB) fail fast and say the limit."""
    big = b"1.0,2.0\n" * 10**7
    from cnfviz.targets import samples_from_csv

    with pytest.raises(ConfigError, match=r"larger than the limit of 5,000,000 bytes \(5 MB\)"):
        samples_from_csv(big)
    with pytest.raises(ConfigError, match="1,000,000 data rows; the limit is 100,000"):
        samples_from_csv(big[: 8 * 10**6], max_bytes=10**7)
    data = samples_from_csv(io.BytesIO(GOOD_CSV))
    assert data.shape == (60, 2) and isinstance(SamplesTarget(data), SamplesTarget)


def test_a_pickle_payload_outside_a_zip_is_refused_too(tmp_path):
    """A bare pickle (not torch.save's zip) with code is named as such, not just "unreadable"."""
    from cnfviz import load_checkpoint

    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError, match=r"refused to load the checkpoint: it contains code .*posix\.system"):
        load_checkpoint(pickle.dumps(_Payload(str(marker)), protocol=2))
    assert not marker.exists()


# --------------------------------------------------------------------------------------------------
# Config files on the Compare page
# --------------------------------------------------------------------------------------------------

COMPARE = str(ROOT / "app_pages" / "compare.py")
_CONFIG = default_config("normal", adam_iters=5).to_json().encode()

COMPARE_FILE_CASES = {
    "compare-markdown-file-name": (
        ("**b**[x](http://e).json", b"\xff\xfe binary"),
        ("**b**[x](http://e).json is not a text (JSON) file", "upload the config JSON"),
    ),
    "compare-config-over-1-MB": (("big.json", b" " * 1_100_000 + _CONFIG), ("big.json has 1,1", "at most 1 MB")),
    "compare-invalid-value": (
        ("bad.json", _CONFIG.replace(b'"lr": 0.01', b'"lr": -1')),
        ("run 2 (bad)", "lr must be in (0, 10]"),
    ),
}


@pytest.mark.parametrize("case", list(COMPARE_FILE_CASES.values()), ids=list(COMPARE_FILE_CASES))
def test_a_bad_config_file_on_the_compare_page_is_named_escaped(case):
    (name, content), fragments = case
    at = AppTest.from_file(COMPARE, default_timeout=60).run()
    at.radio(key="compare_mode").set_value("files").run()
    files = [("good.json", _CONFIG, "application/json"), (name, content, "application/json")]
    at.file_uploader(key="compare_upload").set_value(files).run()
    assert_clean(at)
    assert_says(at, fragments)
    assert "[x](http://e)" not in "".join(e.value for e in at.error), "a name is never a link"
    assert at.button(key="compare_start_button").disabled
    files[1] = ("other.json", _CONFIG.replace(b'"seed": 0', b'"seed": 1'), "application/json")
    at.file_uploader(key="compare_upload").set_value(files).run()
    assert_clean(at)
    assert not at.error and not at.button(key="compare_start_button").disabled, messages(at)
