"""Hostile input, by channel: nothing in an upload, a checkpoint, a command line or a library call may inflate,
decode, crash or mislead. Each channel is one table of cases run by one test, as in ``test_bad_input.py``.

The causes covered: uploads bounded after decompression (zip bombs, too many entries, a huge pickle), pictures
decoded only in five formats chosen by content, 16-bit pictures scaled, numbers that are infinite or huge,
non-finite or empty library input, and the CLI's JSON and output-path errors. Issue 21 adds memory that no
budget saw (a picture padded to a square after its size check, the fixed-step time grid, refused alike by the
server, the CLI and the library, a sweep that never asked the budget), a sweep's results lost or mislabelled
(``--json`` opened last, ``--vary data``, duplicate runs), data float32 cannot resolve, links the app writes
but cannot read back, and the operator's ``CNFVIZ_*`` variables (``abc``, ``inf``, ``0`` that meant "no limit").
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnfviz import FFJORD, ConfigError, ModelConfig, SolverConfig, TrainConfig, Trainer, load_checkpoint, make_target
from cnfviz import train as library_train
from cnfviz.cli import main
from cnfviz.runtime.budget import RunBudget, check_run
from cnfviz.targets import (
    SLOW_SCIPY,
    TARGETS,
    ImageTarget,
    Param,
    SamplesTarget,
    image_from_file,
    samples_from_csv,
)
from cnfviz.training.checkpoint import MAX_ENTRIES, checkpoint_bytes

CONFIG = TrainConfig(
    target="normal", model={"hidden": (4,)}, solver={"method": "rk4", "step_size": 0.25}, adam_iters=2, eval_every=0
)


@pytest.fixture(scope="module")
def flow() -> FFJORD:
    torch.manual_seed(0)
    return FFJORD(1, CONFIG.model, CONFIG.solver)


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ==================================================================================================
# Checkpoints: bounded by what their archive declares, before torch inflates it
# ==================================================================================================


def _rezip(raw: bytes, *, extra: dict[str, bytes] | None = None, deflate: bool = True) -> bytes:
    """The archive again, every entry deflated (torch.load inflates them), with ``extra`` entries added."""
    out = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w", method) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    return out.getvalue()


def _payload(flow: FFJORD, change: Callable[[dict], None]) -> bytes:
    payload = torch.load(io.BytesIO(checkpoint_bytes(flow, CONFIG)), weights_only=True)
    change(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def _big_data(payload: dict) -> None:
    payload["target_data"] = torch.zeros(4_000_000, 2, dtype=torch.float64)  # 64 MB of zeros


def _with(path: tuple[str, ...], value: Any) -> Callable[[dict], None]:
    def change(payload: dict) -> None:
        node = payload
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return change


def _int_weights(payload: dict) -> None:
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = payload["state_dict"][name].round().long()


def _many_entries(flow: FFJORD) -> bytes:
    return _rezip(checkpoint_bytes(flow, CONFIG), extra={f"archive/junk/{i}": b"" for i in range(MAX_ENTRIES + 1)})


@dataclass(frozen=True)
class Bad:
    content: Callable[[FFJORD], bytes]
    fragments: tuple[str, ...]


CHECKPOINT_CASES = {
    "deflate-bomb-entry": Bad(
        lambda f: _rezip(checkpoint_bytes(f, CONFIG), extra={"archive/data/999": bytes(200_000_000)}),
        ("refused to load the checkpoint", "would expand to 200,0", "the limit is 50,000,000 bytes"),
    ),
    "deflated-huge-target-data": Bad(
        lambda f: _rezip(_payload(f, _big_data)), ("would expand to 64,", "the limit is 50,000,000 bytes")
    ),
    "too-many-entries": Bad(_many_entries, ("declares 10,0", "the limit is 10,000")),
    "huge-pickle": Bad(
        lambda f: _payload(f, _with(("extra", "notes"), "x" * 2_000_000)), ("pickled structure is 2,0", "a few kB")
    ),
    "integer-weights": Bad(lambda f: _payload(f, _int_weights), ("must be floating-point tensors", "is int64")),
    "config-lr-inf": Bad(
        lambda f: _payload(f, _with(("config", "lr"), math.inf)), ("checkpoint config: lr must be a finite number",)
    ),
    "config-adam-iters-inf": Bad(
        lambda f: _payload(f, _with(("config", "adam_iters"), math.inf)), ("adam_iters must be an integer",)
    ),
    "config-batch-1e300": Bad(
        lambda f: _payload(f, _with(("config", "batch_size"), 1e300)), ("batch_size must be an integer",)
    ),
    "config-width-huge-int": Bad(
        lambda f: _payload(f, _with(("config", "model", "hidden"), [10**40])), ("model.hidden[0] must be an integer",)
    ),
    "dim-inf": Bad(lambda f: _payload(f, _with(("dim",), math.inf)), ("checkpoint dim must be an integer in [1, 64]",)),
    "dim-nan-tensor": Bad(
        lambda f: _payload(f, _with(("dim",), torch.tensor(float("nan")))), ("checkpoint dim must be an integer",)
    ),
    "zip-index-cut": Bad(lambda f: checkpoint_bytes(f, CONFIG)[:-30], ("cut short or damaged", "copy it again")),
    # Issue 21: a checkpoint from a newer cnfviz is one, said as such (not "not a cnfviz checkpoint").
    "newer-format": Bad(
        lambda f: _payload(f, _with(("format",), "cnfviz-checkpoint-v7")),
        ("made by a newer cnfviz (format 7)", "upgrade cnfviz"),
    ),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES.values()), ids=list(CHECKPOINT_CASES))
def test_a_hostile_checkpoint_is_refused_by_what_it_declares_before_inflating(case: Bad, flow):
    raw = case.content(flow)
    assert len(raw) < 3_000_000 or "pickle" in str(case.fragments), "each case is a small upload"
    before = _rss()
    with pytest.raises(ConfigError) as err:
        load_checkpoint(raw)
    assert _rss() - before < 40e6, "nothing was inflated"
    for fragment in case.fragments:
        assert fragment in str(err.value), str(err.value)
    assert err.value.field is not None


def test_an_honest_checkpoint_deflated_still_loads(flow):
    model, config, _ = load_checkpoint(_rezip(checkpoint_bytes(flow, CONFIG)))
    assert config == CONFIG
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), flow.state_dict().values(), strict=True))


def test_the_tensor_budget_is_a_parameter(flow):
    raw = checkpoint_bytes(flow, CONFIG)
    with pytest.raises(ConfigError, match="would expand to"):
        load_checkpoint(raw, max_tensor_bytes=1_000)
    with pytest.raises(ConfigError, match="max_tensor_bytes must be an integer"):
        load_checkpoint(raw, max_tensor_bytes=math.inf)
    assert load_checkpoint(raw, max_tensor_bytes=len(raw))[1] == CONFIG


# ==================================================================================================
# Pictures: five formats, chosen by content; 16-bit scaled
# ==================================================================================================


def _encoded(fmt: str, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (16, 16), 128).save(buf, format=fmt)
    return buf.getvalue()


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke showpage\n"
IMAGE_REFUSED = {
    "eps-named-png": EPS,
    "eps-binary-header": b"\xc5\xd0\xd3\xc6" + b"\x00" * 28 + EPS,
    "tiff": _encoded("TIFF"),
    "ico": _encoded("ICO"),
    "ppm": _encoded("PPM"),
    "pcx": _encoded("PCX"),
    "tga": _encoded("TGA"),
    "pdf": _encoded("PDF", "RGB"),
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
    "png-magic-then-garbage": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
}


@pytest.mark.parametrize("raw", list(IMAGE_REFUSED.values()), ids=list(IMAGE_REFUSED))
def test_only_five_picture_formats_are_ever_decoded(raw, monkeypatch):
    from PIL import EpsImagePlugin

    def never(*_: Any, **__: Any) -> None:
        raise AssertionError("the PostScript decoder was reached")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", never, raising=False)
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "load", never)
    with pytest.raises(ConfigError, match="not a readable image"):
        image_from_file(raw)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_the_five_formats_decode_whatever_the_file_is_called(fmt):
    image = image_from_file(_encoded(fmt))
    assert image.shape == (16, 16) and abs(float(image.mean()) - 128 / 255) < 0.02


def _png16(levels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(levels.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_16_bit_picture_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).round()
    image = image_from_file(_png16(ramp))
    np.testing.assert_allclose(image, ramp / 65535, atol=1e-6)
    dark = image_from_file(_png16(np.full((8, 8), 1000)))
    assert float(dark.max()) == pytest.approx(1000 / 65535, rel=1e-5), "a dark 16-bit picture stays dark"
    big = image_from_file(_png16(np.linspace(0, 65535, 600 * 600).reshape(600, 600)))
    assert big.shape == (256, 256) and 0.45 < float(big.mean()) < 0.55, "shrunk, and still scaled"


@pytest.mark.parametrize(("width", "height"), [(10_000, 1), (1, 10_000), (2_000, 30), (300, 200)])
def test_a_picture_is_bounded_by_the_square_it_becomes(width, height):
    # A 174-byte 10,000 × 1 strip passed the pixel caps, then the app padded it to 10,000² floats (3.1 GB).
    buf = io.BytesIO()
    Image.new("L", (width, height), 0).save(buf, format="PNG")
    image = image_from_file(buf.getvalue())
    assert max(image.shape) ** 2 <= 256 * 256, image.shape
    assert max(image.shape) == min(256, max(width, height)), "shrunk only as far as the square needs"


def test_a_strip_picture_uploaded_on_the_train_page_keeps_the_server_small():
    from cnfviz.ui.custom_target import image_target

    buf = io.BytesIO()
    Image.new("L", (10_000, 1), 0).save(buf, format="PNG")
    assert len(buf.getvalue()) < 500
    before = _rss()
    target = image_target(buf.getvalue(), invert=True)
    assert target.image.shape == (256, 256), target.image.shape
    assert _rss() - before < 100e6


# ==================================================================================================
# The library: numbers and tensors
# ==================================================================================================

LIBRARY_CASES: dict[str, tuple[Callable[[FFJORD], Any], str, tuple[str, ...]]] = {
    "log-prob-nan": (lambda f: f.log_prob(torch.tensor([[0.0], [math.nan]])), "x", ("NaN or infinite", "1 of 2")),
    "log-prob-inf": (lambda f: f.log_prob(torch.tensor([[math.inf]])), "x", ("NaN or infinite",)),
    "forward-nan": (lambda f: f(torch.full((3, 1), math.nan)), "x", ("NaN or infinite",)),
    "transform-inf": (lambda f: f.transform(torch.tensor([[-math.inf]])), "z", ("z holds NaN",)),
    "inverse-bool": (lambda f: f.inverse(torch.ones(2, 1, dtype=torch.bool)), "x", ("real numbers", "bool")),
    "log-prob-complex": (lambda f: f.log_prob(torch.ones(2, 1, dtype=torch.complex64)), "x", ("complex64",)),
    "log-prob-wrong-shape": (lambda f: f.log_prob(torch.ones(2, 3)), "x", ("shape (N, 1)",)),
    "log-prob-chunk-inf": (lambda f: f.log_prob(torch.ones(2, 1), batch_size=math.inf), "batch_size", ()),
    "sample-inf": (lambda f: f.sample(math.inf), "n", ("n must be an integer",)),
    "sample-1e300": (lambda f: f.sample(1e300), "n", ()),
    "trajectories-inf-times": (lambda f: f.trajectories(3, math.inf), "times", ()),
    "trajectories-empty": (lambda f: f.trajectories(torch.zeros(0, 1)), "z", ("at least one starting point",)),
    "vector-field-nan": (lambda f: f.vector_field(torch.tensor([[math.nan]]), 0.0), "points", ()),
    "dim-inf": (lambda f: FFJORD(math.inf), "dim", ()),
    "target-sample-inf": (lambda f: make_target("normal").sample(math.inf), "n", ()),
    "target-param-inf": (lambda f: make_target("normal", loc=math.inf), "normal.loc", ("finite number",)),
    "target-int-param-inf": (lambda f: Param("k", 1, "int", min=1).validate(math.inf, "t"), "t.k", ()),
    "target-grid-inf": (lambda f: make_target("normal").grid(math.inf), "resolution", ()),
    "csv-rows-inf": (lambda f: samples_from_csv("x\n1\n", max_rows=math.inf), "max_rows", ()),
    "image-pixels-nan": (lambda f: image_from_file(b"x", max_pixels=math.nan), "max_pixels", ()),
    # Issue 21: the real cause, by name, before anything is allocated.
    "image-target-over-its-pixels": (lambda f: ImageTarget(np.ones((3000, 3000), np.uint8)), "image", ("pixels",)),
    "normal-scale-below-float32": (
        lambda f: make_target("normal", loc=6.0, scale=1e-17),
        "normal.scale",
        ("too narrow for float32", "normal.scale ≥"),
    ),
    "normal-scale-overflowing-float32": (lambda f: make_target("normal", scale=1e300), "normal.scale", ("float32",)),
    "mixture-sds-below-float32": (
        lambda f: make_target("mixture", weights=[1, 1], means=[1e6, 0], sds=[0.01, 1]),
        "mixture.sds",
        ("mixture.means 1e+06",),
    ),
    "samples-below-float32": (
        lambda f: SamplesTarget(1e6 + np.linspace(-0.01, 0.01, 50)),
        "samples",
        ("column 1", "subtract the mean"),
    ),
    "mixture-more-components-than-a-link-holds": (
        lambda f: make_target("mixture", weights=[1] * 60, means=list(range(60)), sds=[1] * 60),
        "mixture.weights",
        ("60 numbers", "limit is 32"),
    ),
    "time-grid-past-the-nfe-cap": (
        lambda f: check_run(CONFIG.replace(solver={"method": "rk4", "step_size": 1e-9}), 1, RunBudget.for_cli()),
        "solver.step_size",
        ("1,000,000,000 rk4 steps", "solver.max_nfe 5,000"),
    ),
    "ot-pairing-past-what-stop-can-wait-for": (
        lambda f: check_run(TrainConfig(target="moons", objective="ot-flow-matching", batch_size=8192), 2),
        "batch_size",
        ("OT pairing", "2.9 s per iteration", "batch_size ≤ 2,816"),
    ),
    "flow-matching-said-in-its-own-terms": (
        lambda f: check_run(
            TrainConfig(target="moons", objective="flow-matching", batch_size=10**6), 2, RunBudget(max_bytes=10**9)
        ),
        "batch_size",
        ("flow-matching: one evaluation of the network per sample",),
    ),
    "ray-address-port-out-of-range": (
        lambda f: _ray("127.0.0.1:99999"),
        "ray_address",
        ("is not a Ray address", "port 99999 is outside 1-65535"),
    ),
    "ray-address-host-not-a-name": (
        lambda f: _ray("h\u00e9llo\u2028:6379"),
        "ray_address",
        ("is not a Ray address", "is not a host name"),
    ),
    "time-grid-without-a-cap": (
        lambda f: check_run(
            CONFIG.replace(solver={"method": "euler", "step_size": 1e-7, "max_nfe": None}), 1, RunBudget.for_cli()
        ),
        "solver.step_size",
        ("10,000,000 steps", "limit is 100,000"),
    ),
    "library-train-time-grid-past-its-own-nfe-cap": (
        lambda f: library_train(CONFIG.replace(solver={"method": "rk4", "step_size": 0.001, "max_nfe": 100})),
        "solver.step_size",
        ("1,000 rk4 steps, 4,000 evaluations per solve", "solver.max_nfe 100", "solver.step_size ≥ 0.04"),
    ),
    "library-trainer-time-grid-past-the-nfe-cap": (
        lambda f: Trainer(CONFIG.replace(solver={"method": "rk4", "step_size": 1e-9})),
        "solver.step_size",
        ("1,000,000,000 rk4 steps", "solver.max_nfe 5,000"),
    ),
    "library-solve-time-grid-without-a-cap": (
        lambda f: FFJORD(1, CONFIG.model, SolverConfig("euler", step_size=1e-6, max_nfe=10)).log_prob(
            torch.zeros(4, 1)
        ),
        "solver.step_size",
        ("1,000,000 steps", "limit is 100,000"),
    ),
    "checkpoint-bytes-inf": (lambda f: load_checkpoint(b"x", max_bytes=math.inf), "max_bytes", ()),
    "model-config-width-numpy-inf": (lambda f: ModelConfig(hidden=(np.float64("inf"),)), "model.hidden[0]", ()),
}


def _ray(address: str) -> None:
    from cnfviz.runtime.backend import make_backend

    make_backend("ray", address)


@pytest.mark.parametrize(("call", "field", "fragments"), list(LIBRARY_CASES.values()), ids=list(LIBRARY_CASES))
def test_the_library_names_the_input_it_refuses(call, field, fragments, flow):
    with pytest.raises(ConfigError) as err:
        call(flow)
    assert err.value.field == field, str(err.value)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)
    assert "learning rate" not in str(err.value), "bad input is not blamed on stiffness"


# Fixed time grids every channel refuses alike: the library's train and Trainer say what the server and the CLI say.
GRIDS = {
    "euler-1e-7-no-cap": {"method": "euler", "step_size": 1e-7, "max_nfe": None},
    "rk4-1e-9-default-cap": {"method": "rk4", "step_size": 1e-9},
    "rk4-just-past-the-cap": {"method": "rk4", "step_size": 1 / 1300, "max_nfe": 5000},
    "midpoint-just-past-the-step-limit": {"method": "midpoint", "step_size": 0.99e-5, "max_nfe": None},
}


@pytest.mark.parametrize("grid", list(GRIDS.values()), ids=list(GRIDS))
def test_the_library_refuses_a_time_grid_as_the_server_does_before_building_anything(grid, monkeypatch):
    config = CONFIG.replace(solver=grid)
    with pytest.raises(ConfigError) as server:
        check_run(config, 1, RunBudget.for_cli())
    built = []
    monkeypatch.setattr("cnfviz.training.trainer.FFJORD", lambda *a, **k: built.append(a))
    monkeypatch.setattr("cnfviz.training.trainer.make_target", lambda *a, **k: built.append(a))
    before = _rss()
    for call in (lambda: library_train(config), lambda: Trainer(config)):
        with pytest.raises(ConfigError) as library:
            call()
        assert (library.value.field, str(library.value)) == (server.value.field, str(server.value))
        assert library.value.field == "solver.step_size"
    assert built == [], "refused before the target or the model was built"
    assert _rss() - before < 50e6
    steps = math.ceil(1 / grid["step_size"] - 1e-9)
    assert f"{steps:,}" in str(server.value)


def test_a_grid_at_the_limits_still_trains_in_the_library():
    ok = CONFIG.replace(solver={"method": "euler", "step_size": 1e-5, "max_nfe": None}, adam_iters=1)
    check_run(ok, 1, RunBudget.for_cli())  # 100,000 steps: exactly the limit
    trainer = Trainer(ok.replace(solver={"step_size": 0.01}))
    assert trainer.run(final_metrics=False).status == "done"


def test_a_huge_ot_batch_is_a_server_limit_and_the_library_notes_its_estimate():
    config = TrainConfig(target="moons", objective="ot-flow-matching", batch_size=8192, adam_iters=1, eval_every=0)
    with pytest.raises(ConfigError) as server:
        check_run(config, 2)
    assert server.value.field == "batch_size" and "about 2.9 s per iteration" in str(server.value)
    check_run(config, 2, RunBudget.for_cli())  # the command line has no time cap: its machine is the user's
    trainer = Trainer(config)  # nor has the library; its notes carry the same estimate
    note = next(n for n in trainer.notes if "OT pairing" in n)
    assert "chunks of at most 256 points (the batch has 8,192)" in note and "about 2.9 s of pairing" in note


@pytest.mark.parametrize("answer", [b"", b"HTTP/1.1 400 Bad Request\r\n\r\n"], ids=["silent", "a-web-server"])
def test_an_address_that_accepts_but_is_no_ray_head_answers_in_seconds(answer):
    # It kept the CLI retrying for 4 minutes, and the app's backend lock with it.
    import socket
    import threading
    import time

    from cnfviz.runtime.backend import ClusterUnreachable, make_backend

    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        conn, _ = server.accept()
        held.append(conn)
        if answer:
            conn.recv(100)
            conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(ClusterUnreachable) as err:
        make_backend("ray", f"127.0.0.1:{server.getsockname()[1]}")
    assert time.monotonic() - start < 10
    assert "not" in err.value.why and "Ray head" in err.value.why, err.value.why
    server.close()


def test_an_empty_batch_gives_an_empty_result(flow):
    empty = torch.zeros(0, 1)
    assert flow.log_prob(empty).shape == (0,)
    logp, kinetic, jacobian = flow(empty, regularize=True)
    assert logp.shape == kinetic.shape == jacobian.shape == (0,)
    assert flow.transform(empty).shape == flow.inverse(empty).shape == flow.sample(0).shape == (0, 1)
    assert flow.vector_field(empty, 0.5).shape == (0, 1)


def test_other_dtypes_are_cast_and_give_the_float32_answer(flow):
    x = torch.linspace(-2, 2, 7)[:, None]
    want = flow.log_prob(x)
    np.testing.assert_allclose(flow.log_prob(x.double()).numpy(), want.numpy(), rtol=1e-6)
    ints = torch.tensor([[-1], [0], [2]])
    np.testing.assert_allclose(flow.log_prob(ints).numpy(), flow.log_prob(ints.float()).numpy())
    assert flow.log_prob(x.double()).dtype == torch.float32


def test_csv_quoted_thousands_are_one_cell_with_a_hint():
    rows = "\n".join(f'"1,234",{i}' for i in range(12))
    with pytest.raises(ConfigError, match=r"'1,234' is not a number; thousands separators .* write 1234"):
        samples_from_csv("x,y\n" + rows)
    quoted = samples_from_csv("x,y\n" + "\n".join(f'"{i}", "{i * i % 7}"' for i in range(12)))
    assert quoted.shape == (12, 2) and quoted[5].tolist() == [5.0, 4.0]
    assert isinstance(SamplesTarget(quoted), SamplesTarget)


# ==================================================================================================
# The command line: one line, status 2, before any training
# ==================================================================================================


@dataclass(frozen=True)
class Cli:
    argv: tuple[str, ...]
    fragments: tuple[str, ...]
    files: dict[str, str | bytes] | None = None  # written under tmp_path; {name} in argv is replaced by its path
    env: dict[str, str] | None = None  # the operator's variables for this command


TINY_FLAGS = "{tiny}"  # replaced by a run that trains in a blink, should a case's check be missing
_TINY = ["--hidden", "4", "--solver", "rk4", "--step-size", "0.5", "--adam-iters", "2", "--eval-every", "0"]

CLI_CASES = {
    "config-huge-int": Cli(
        ("train", "--config", "{c.json}"),
        ("config JSON is not usable", "digits"),
        {"c.json": '{"seed": ' + "9" * 5000 + "}"},
    ),
    "config-deep-nesting": Cli(
        ("train", "--config", "{c.json}"), ("nested too deeply",), {"c.json": "[" * 100_000 + "]" * 100_000}
    ),
    "config-inf": Cli(
        ("train", "--config", "{c.json}"), ("adam_iters must be an integer",), {"c.json": '{"adam_iters": 1e999}'}
    ),
    "config-binary": Cli(("train", "--config", "{c.json}"), ("not UTF-8 text",), {"c.json": b"\xff\xfe\x00garbage"}),
    "config-not-a-mapping": Cli(("train", "--config", "{c.json}"), ("built from a mapping",), {"c.json": "[1, 2]"}),
    "data-missing": Cli(
        ("train", "--data", "/nonexistent/samples.csv"), ("--data file not found: /nonexistent/samples.csv",)
    ),
    "data-missing-no-extension": Cli(("train", "--data", "nosuchfile"), ("--data file not found: nosuchfile",)),
    "data-directory": Cli(("train", "--data", "/"), ("--data file is a directory",)),
    "save-missing-folder": Cli(("train", "--save", "/nonexistent/dir/flow.pt"), ("--save", "does not exist")),
    "save-is-a-directory": Cli(("train", "--save", "{d}"), ("--save", "is a directory"), {"d/x": ""}),
    "json-unwritable": Cli(("train", "--json", "/proc/cnfviz-test.json"), ("--json", "cannot be written")),
    "sample-out-unwritable": Cli(
        ("sample", "--checkpoint", "x.pt", "--out", "/nonexistent/s.csv"), ("--out", "does not exist")
    ),
    "batch-million-wide": Cli(
        ("train", "--batch", "1000000", "--hidden", "1024,1024,1024,1024"), ("would need about", "this machine")
    ),
    "lr-overflowing-to-inf": Cli(("train", "--lr", "1e400"), ("lr must be a finite number",)),
    "max-seconds-inf": Cli(("train", "--max-seconds", "inf"), ("max_seconds must be a finite number",)),
    "seed-huge": Cli(("train", "--seed", "9" * 30), ("seed must be an integer in [0, 2147483647]",)),
    "width-huge": Cli(("train", "--hidden", "9" * 30), ("model.hidden[0] must be an integer in [1, 1024]",)),
    "threads-huge": Cli(("train", "--threads", "9" * 30), ("--threads must be an integer in [1, 1024]",)),
    "sample-n-huge": Cli(("sample", "--checkpoint", "x.pt", "-n", "9" * 30), ("-n must be between 1 and",)),
    "param-inf": Cli(("train", "--target", "normal", "--param", "loc=inf"), ("normal.loc must be a finite number",)),
    "newline-in-path": Cli(("train", "--data", "a\nb.csv"), ("--data file not found: a b.csv",)),
    # Issue 21: a sweep asks the budget and checks --json before training, and varies only what varies per run.
    "sweep-batch-million": Cli(
        ("sweep", "--vary", "seed=1,2", "--batch", "1000000", "--hidden", "1024,1024,1024,1024", "--quiet"),
        ("run seed=1: this run would need about", "this machine"),
    ),
    "sweep-together-over-the-machine": Cli(
        ("sweep", "--vary", "seed=" + ",".join(map(str, range(12))), "--target", "moons", "--batch", "4000"),
        ("the 12 runs of this sweep train at once", "CNFVIZ_MAX_RUN_MB"),
        env={"CNFVIZ_MAX_RUN_MB": "2000"},  # each run alone (about 0.5 GB) fits
    ),
    "sweep-json-unwritable": Cli(
        ("sweep", "--vary", "seed=1,2", "--json", "/nonexistent/dir/r.json", "--quiet", TINY_FLAGS),
        ("--json /nonexistent/dir/r.json cannot be written",),
    ),
    "sweep-vary-data": Cli(
        ("sweep", "--vary", "data=a.csv,b.csv", "--quiet"), ("'data' is applied once to the whole sweep",)
    ),
    "sweep-vary-backend": Cli(("sweep", "--vary", "backend=local,ray", "--quiet"), ("'backend' is applied once",)),
    "sweep-vary-ray-address": Cli(
        ("sweep", "--vary", "ray-address=a:1,b:2", "--quiet"), ("'ray-address' is applied once",)
    ),
    "sweep-duplicate-value": Cli(("sweep", "--vary", "seed=1,1", "--quiet"), ("--vary seed: 1 is given twice",)),
    "sweep-same-run-twice": Cli(
        ("sweep", "--vary", "lr=1e-3,0.001", "--quiet"), ("'lr=1e-3' and 'lr=0.001' are the same run",)
    ),
    # The fixed-step grid is counted before it is built (one such link took a server from 0.5 to 8.8 GB).
    "step-size-past-the-nfe-cap": Cli(
        ("train", "--solver", "rk4", "--step-size", "1e-9"), ("solver.step_size 1e-09", "solver.max_nfe")
    ),
    "step-size-without-a-cap": Cli(
        ("train", "--solver", "euler", "--step-size", "1e-8", "--max-nfe", "none"),
        ("solver.step_size 1e-08", "limit is 100,000"),
    ),
    # The operator's variables: a typo is an error naming the variable, and 0 is never "no limit".
    "env-max-run-mb-text": Cli(
        ("train", TINY_FLAGS), ('CNFVIZ_MAX_RUN_MB: invalid value "abc"',), env={"CNFVIZ_MAX_RUN_MB": "abc"}
    ),
    "env-max-run-mb-inf": Cli(
        ("train", TINY_FLAGS), ('CNFVIZ_MAX_RUN_MB: invalid value "inf"',), env={"CNFVIZ_MAX_RUN_MB": "inf"}
    ),
    "env-max-run-mb-zero-is-not-off": Cli(
        ("train", TINY_FLAGS), ('CNFVIZ_MAX_RUN_MB: invalid value "0"', "or none"), env={"CNFVIZ_MAX_RUN_MB": "0"}
    ),
    "env-max-step-seconds-zero": Cli(
        ("train", TINY_FLAGS), ('CNFVIZ_MAX_STEP_SECONDS: invalid value "0"',), env={"CNFVIZ_MAX_STEP_SECONDS": "0"}
    ),
}


@pytest.mark.parametrize("case", list(CLI_CASES.values()), ids=list(CLI_CASES))
def test_the_cli_refuses_hostile_input_in_one_line_before_training(case: Cli, tmp_path, capsys, monkeypatch):
    argv = [x for a in case.argv for x in ([*_TINY, "--n-test", "50"] if a == TINY_FLAGS else [a])]
    for name, value in (case.env or {}).items():
        monkeypatch.setenv(name, value)
    for name, content in (case.files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        top = name.split("/")[0]
        argv = [a.replace("{" + top + "}", str(tmp_path / top)) for a in argv]
    with pytest.raises(SystemExit) as exc:
        # --adam-iters 2: a sweep whose check is missing trains in a blink rather than for minutes.
        main(
            [*argv, "--quiet"]
            if argv[0] == "train"
            else [*argv, "--quiet", "--adam-iters", "2"]
            if argv[0] == "sweep"
            else argv
        )
        pytest.fail("the command ran to the end")
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert err.startswith("cnfviz: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and not out
    for fragment in case.fragments:
        assert fragment in err, err


def test_a_save_that_fails_after_training_is_one_line(tmp_path, capsys, monkeypatch):
    import cnfviz.cli as cli

    def full_disk(*_: Any, **__: Any) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0\nmore text")

    monkeypatch.setattr(cli, "save_checkpoint", full_disk)
    fast = ["--hidden", "4", "--solver", "rk4", "--step-size", "0.5", "--adam-iters", "1", "--eval-every", "0"]
    with pytest.raises(SystemExit) as exc:
        main(["train", *fast, "--n-test", "50", "--quiet", "--save", str(tmp_path / "f.pt")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("cnfviz: error: cannot write --save") and err.count("\n") == 1


# ==================================================================================================
# Links: exactly the picker's targets, and every run they ask for within the server's budget
# ==================================================================================================

LINK_CASES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "slow-scipy-levy-stable": ({"target": "scipy:levy_stable"}, ("scipy:levy_stable takes seconds", "picker")),
    "slow-scipy-studentized-range": ({"target": "scipy:studentized_range", "p.k": "3", "p.df": "10"}, ("picker",)),
    "slow-scipy-gausshyper": ({"target": "scipy:gausshyper"}, ("scipy:gausshyper takes seconds",)),
    "samples-without-data": ({"target": "samples"}, ("a link cannot carry data",)),
    "image-without-data": ({"target": "image"}, ("a link cannot carry data",)),
    "batch-1e300": ({"batch": "1e300"}, ('"batch=1e300"', "whole number")),
    "batch-huge-int": ({"batch": "9" * 400}, ("batch_size must be an integer",)),
    "width-huge-int": ({"hidden": "9" * 400}, ("model.hidden[0] must be an integer",)),
    "seed-inf": ({"seed": "inf"}, ('"seed=inf"',)),
    "max-steps-huge": ({"maxsteps": "9" * 30}, ("solver.max_steps must be an integer",)),
    "bidi-override-value": ({"act": "tanh\u202e"}, ("Invalid activation",)),
}


@pytest.mark.parametrize(("query", "fragments"), list(LINK_CASES.values()), ids=list(LINK_CASES))
def test_a_link_asks_only_for_what_the_picker_offers(query, fragments):
    from cnfviz.features.links import parse_query

    state = parse_query(query)
    assert state.notices, "a notice says why"
    text = " ".join(state.notices)
    for fragment in fragments:
        assert fragment in text, text
    assert not state.config.target.startswith("scipy:") or state.config.target.split(":")[1] not in SLOW_SCIPY


@pytest.mark.parametrize("components", [2, 20, 32])
def test_every_link_the_app_writes_it_reads_back(components):
    # A 60-component mixture's address was refused on reopening (each list over the reader's 1,000 characters):
    # the writer now holds at most as many numbers as a link's value can carry (60 is refused, by name).
    from cnfviz.features.links import MAX_VALUE_CHARS, config_to_query, parse_query

    rng = np.random.default_rng(components)
    weights = rng.uniform(0.1, 1, components)
    params = {
        "weights": (weights / weights.sum()).tolist(),  # full-precision floats: the longest text
        "means": (-rng.uniform(1, 3, components) * 1e-300).tolist(),  # 24 characters each
        "sds": rng.uniform(0.1, 1, components).tolist(),
    }
    config = TrainConfig(target="mixture", target_params=params)
    query = config_to_query(config)
    if components == 32:
        assert max(len(v) for v in query.values()) > 750, "the case is near the limit"
    assert max(len(v) for v in query.values()) <= MAX_VALUE_CHARS
    state = parse_query(query)
    assert state.notices == (), state.notices
    assert state.config == config


def test_a_link_too_long_for_a_qr_code_gets_words_instead():
    def page() -> None:
        from cnfviz.ui.links import link_qr

        link_qr("t", "http://192.168.1.20:8501/train?p.means=" + ",".join(["0.123456789012345"] * 200))
        link_qr("t", "http://192.168.1.20:8501/train?target=moons", name="short")

    at = AppTest.from_function(page, default_timeout=30).run()
    assert not at.exception, at.exception
    assert any("more than a QR code can hold" in i.value for i in at.info), [i.value for i in at.info]
    assert len(at.get("image")) == 1, "the short link still gets its code"


def test_every_target_a_link_accepts_is_one_the_picker_offers():
    from cnfviz.features.links import parse_query
    from cnfviz.targets import scipy_distributions
    from cnfviz.ui.sidebar import target_choices

    offered = set(target_choices())
    for name in [*TARGETS, *("scipy:" + n for n in scipy_distributions()), "samples", "image"]:
        state = parse_query({"target": name})
        accepted = not any("Ignored target" in n for n in state.notices)
        assert accepted == (name in offered and name not in ("samples", "image")), name


def test_a_server_refuses_a_slow_target_from_any_source_before_building_it():
    from cnfviz import TrainingJob

    config = TrainConfig(target="scipy:levy_stable", target_params={"alpha": 1.5, "beta": 0.5})
    with pytest.raises(ConfigError) as err:
        TrainingJob(config)
    assert err.value.field == "target" and "cannot be stopped" in str(err.value)
    assert check_run(config, 1, RunBudget.for_cli()).batch == config.batch_size, "the CLI's own machine may"


def test_a_link_that_autostarts_a_huge_batch_says_so_and_the_server_stays_small():
    from tests.apptest import TRAIN

    before = _rss()
    at = AppTest.from_file(TRAIN, default_timeout=60)
    at.query_params.update({"target": "moons", "batch": "1000000", "autostart": "1"})
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("could not start" in e and "batch" in e and "CNFVIZ" in e for e in errors), errors
    assert _rss() - before < 300e6, "nothing was allocated for the run"


# ==================================================================================================
# The pages: a Compare config upload and a Train page checkpoint upload
# ==================================================================================================

_JSON = TrainConfig(target="normal", adam_iters=5).to_json()
COMPARE_UPLOAD_CASES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "infinite-iterations": (_JSON.replace('"adam_iters": 5', '"adam_iters": 1e999').encode(), ("adam_iters",)),
    "huge-integer-seed": (_JSON.replace('"seed": 0', '"seed": ' + "9" * 5000).encode(), ("digits",)),
    "deep-nesting": (("[" * 50_000 + "]" * 50_000).encode(), ("nested too deeply",)),
    "nan-learning-rate": (_JSON.replace('"lr": 0.001', '"lr": NaN').encode(), ("lr must be a finite number",)),
    "batch-1e300": (_JSON.replace('"batch_size": 256', '"batch_size": 1e300').encode(), ("batch_size",)),
    "width-numpy-like-float": (_JSON.replace('"hidden": [\n      64', '"hidden": [\n      64.5').encode(), ("hidden",)),
}


@pytest.mark.parametrize(("content", "fragments"), list(COMPARE_UPLOAD_CASES.values()), ids=list(COMPARE_UPLOAD_CASES))
def test_a_hostile_config_on_the_compare_page_is_named_and_nothing_starts(content, fragments):
    from tests.apptest import ROOT

    at = AppTest.from_file(str(ROOT / "app_pages" / "compare.py"), default_timeout=60).run()
    at.radio(key="compare_mode").set_value("files").run()
    files = [("good.json", _JSON.encode(), "application/json"), ("bad.json", content, "application/json")]
    at.file_uploader(key="compare_upload").set_value(files).run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "Traceback" not in errors and "OverflowError" not in errors
    for fragment in fragments:
        assert fragment in errors.replace("\\", ""), errors
    assert at.button(key="compare_start_button").disabled


def test_a_zip_bomb_checkpoint_on_the_train_page_is_refused_and_the_server_stays_small(flow):
    from tests.apptest import TRAIN

    bomb = _rezip(checkpoint_bytes(flow, CONFIG), extra={"archive/data/999": bytes(120_000_000)})
    assert len(bomb) < 1_000_000
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    before = _rss()
    at.file_uploader(key="train_checkpoint_upload").set_value(("small.pt", bomb, "application/octet-stream")).run()
    assert not at.exception
    assert _rss() - before < 100e6
    errors = " ".join(e.value for e in at.error).replace("\\", "")
    assert "Could not load small.pt: refused to load the checkpoint: it would expand to 120,0" in errors, errors
