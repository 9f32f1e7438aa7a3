"""Your own target: a drawing becomes samples on the inked cells and nowhere else; CSV and image uploads
build targets or show the parser's error verbatim; a run on custom data trains to the end; Show code
offers the data as the file its script reads.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnfviz import ConfigError, default_config
from cnfviz.targets import ImageTarget, SamplesTarget, image_from_file, samples_from_csv
from cnfviz.ui.custom_target import (
    CANVAS_HALF_WIDTH,
    CANVAS_POINTS,
    csv_target,
    drawing_ink,
    drawing_samples,
    image_target,
    image_weights,
    pen_stroke,
    stroke_from_selection,
)
from cnfviz.ui.text import plain
from tests.apptest import fresh_caches, wait_for  # noqa: F401 - fresh_caches is an autouse fixture

ROOT = Path(__file__).resolve().parents[2]
TRAIN = str(ROOT / "app_pages" / "train.py")
H = 2 * CANVAS_HALF_WIDTH / (CANVAS_POINTS - 1)  # the canvas's grid spacing


def csv_bytes(data: np.ndarray, header: str = "x,y") -> bytes:
    return (header + "\n" + "\n".join(",".join(f"{v:.6g}" for v in row) for row in data)).encode()


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def blob_picture() -> np.ndarray:
    """Dark ink on white paper: a black square in the top-left quarter of a 40 x 60 picture."""
    img = np.full((40, 60), 255, dtype=np.uint8)
    img[5:15, 10:20] = 0
    return img


# --------------------------------------------------------------------------------------------------
# Drawing → samples
# --------------------------------------------------------------------------------------------------


def test_a_fill_stroke_is_the_selected_grid_points():
    points = [
        {"x": 0.2, "y": 0.4, "curve_number": 1},
        {"x": 0.19999, "y": 0.4000001, "curve_number": 1},  # the same point, as plotly may round it
        {"x": 1.0, "y": -1.0, "curve_number": 1},
        {"x": 0.0, "y": 0.0, "curve_number": 0},  # the ink heatmap, not the canvas
        {"x": 9.0, "y": 0.0, "curve_number": 1},  # off the canvas
        {"y": 1.0},  # malformed
    ]
    assert stroke_from_selection({"points": points}) == [[1.0, -1.0], [0.2, 0.4]]
    assert stroke_from_selection({}) == []


def test_a_pen_stroke_follows_the_path():
    selection = {"points": [], "lasso": [{"x": [-2.0, 2.0], "y": [1.0, 1.0]}]}
    stroke = np.array(stroke_from_selection(selection, "pen"))
    assert len(stroke) > 20
    assert np.all(np.abs(stroke[:, 1] - 1.0) <= 0.3 + 1e-9), "within the pen radius of the line"
    assert stroke[:, 0].min() == pytest.approx(-2.2) and stroke[:, 0].max() == pytest.approx(2.2)
    # A pen ignores the points inside the loop; a fill uses only them.
    inside = {"points": [{"x": 3.0, "y": -3.0, "curve_number": 1}], "lasso": selection["lasso"]}
    assert [3.0, -3.0] not in stroke_from_selection(inside, "pen")
    assert stroke_from_selection(inside, "fill") == [[3.0, -3.0]]
    assert pen_stroke([float("nan")], [0.0]) == []


def test_drawing_samples_lie_on_the_ink_in_proportion():
    strokes = [[[-2.0, -2.0], [2.0, 2.0]], [[2.0, 2.0]]]  # the second stroke inks (2, 2) again
    ink = drawing_ink(strokes)
    assert ink.sum() == 3 and ink.max() == 2
    x = drawing_samples(strokes, n=6000, seed=3)
    assert x.shape == (6000, 2)
    near_a = np.all(np.abs(x - [-2.0, -2.0]) <= H / 2 + 1e-12, axis=1)
    near_b = np.all(np.abs(x - [2.0, 2.0]) <= H / 2 + 1e-12, axis=1)
    assert np.all(near_a | near_b), "every sample lies in an inked cell"
    assert near_b.mean() == pytest.approx(2 / 3, abs=0.03), "twice the ink, twice the mass"
    # Spread over the whole cell, not piled on its centre.
    assert np.ptp(x[near_a, 0]) > 0.9 * H and np.ptp(x[near_a, 1]) > 0.9 * H
    np.testing.assert_array_equal(x, drawing_samples(strokes, n=6000, seed=3))


def test_an_empty_drawing_says_so():
    with pytest.raises(ConfigError, match="empty"):
        drawing_samples([])
    with pytest.raises(ConfigError, match="empty"):
        drawing_samples([[]])


# --------------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------------


def test_csv_uploads_build_samples_targets():
    rng = np.random.default_rng(0)
    two = csv_target(csv_bytes(rng.normal(size=(50, 2))))
    assert isinstance(two, SamplesTarget) and two.dim == 2 and two.data.shape == (50, 2)
    one = csv_target(b"value\n" + b"\n".join(str(v).encode() for v in rng.normal(size=30)))
    assert one.dim == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a,b,c\n" + b"1,2,3\n" * 20, "3 columns"),
        (b"x\n" + b"1\n" * 5 + b"oops\n" + b"2\n" * 10, "'oops' is not a number"),
        (b"x\n1\n2\n", "at least 10"),
        (b"", "empty"),
        (b"\xff\xfe\x00bad", "UTF-8"),
        (b"x\n" + b"1.5\n" * 20, "degenerate"),
        (b"x\n" + b"12345678\n" * 700_000, "limit"),
    ],
)
def test_bad_csv_uploads_say_what_is_wrong(content, message):
    with pytest.raises(ConfigError, match=message):
        csv_target(content)


def test_an_image_upload_is_a_density_where_the_ink_is():
    target = image_target(png_bytes(blob_picture()))  # dark ink on white: inverted by itself
    assert isinstance(target, ImageTarget) and target.image.shape == (60, 60), "padded to a square"
    x = target.sample(500, seed=0)
    # The square covers columns 10-20 of 60 and rows 5-15 of 40, centred in a 60 x 60 square on [-4, 4]².
    px = 8 / 60
    assert np.all((x[:, 0] >= -4 + 10 * px - 1e-9) & (x[:, 0] <= -4 + 20 * px + 1e-9))
    assert np.all((x[:, 1] <= 4 - 15 * px + 1e-9) & (x[:, 1] >= 4 - 25 * px - 1e-9))
    bright = image_target(png_bytes(blob_picture()), invert=False)
    assert bright.sample(200, seed=0)[:, 0].max() > 0, "not inverted: the white paper is the density"


def test_image_weights_round_trip_through_a_png():
    gray = image_from_file(png_bytes(blob_picture()))
    weights = image_weights(gray, invert=True)
    assert weights.dtype == np.uint8 and weights.shape == (60, 60) and weights[:10].max() == 0
    np.testing.assert_array_equal(image_from_file(png_bytes(weights)), weights / 255.0)


def test_bad_image_uploads_say_what_is_wrong():
    with pytest.raises(ConfigError, match="not a readable image"):
        image_target(b"GIF89a not really")
    with pytest.raises(ConfigError, match="no mass"):
        image_target(png_bytes(np.full((8, 8), 255)), invert=True)


# --------------------------------------------------------------------------------------------------
# The Train page
# --------------------------------------------------------------------------------------------------


def pick(source: str) -> AppTest:
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    at.selectbox(key="train_target").set_value(source).run()
    assert not at.exception, at.exception
    return at


def test_csv_upload_on_the_page_trains_to_the_end():
    at = pick("samples")
    assert at.button(key="train_train_button").disabled
    assert any("Upload a CSV" in i.value for i in at.info), "it says what to do, not an error"
    assert not at.error
    data = np.random.default_rng(1).normal(loc=3.0, size=(200, 1))
    at.file_uploader(key="train_csv_upload").set_value(("data.csv", csv_bytes(data, "x"), "text/csv")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    config = at.session_state["train__config"]
    assert config.target == "samples" and config.target_params == {}
    # The picker was on a 2D toy set: 1D data loads the 1D fast defaults.
    assert config.model == default_config("normal").model
    assert at.get("plotly_chart"), "a preview of the data"
    at.number_input(key="train_adam_iters").set_value(30).run()
    at.button(key="train_train_button").click().run()
    # The status and the results are two fragments, each with its own snapshot: wait for both to show the end.
    wait_for(at, lambda a: bool(a.get("table")) and bool(a.success or a.error))
    assert at.success and "Done" in at.success[0].value, [e.value for e in at.error]
    assert at.session_state["train__config"].target == "samples"
    # A link cannot carry the data; Show code offers it as the file its script reads.
    assert any("cannot go into a URL" in i.value for i in at.info)
    download = [b for b in at.get("download_button") if "train_custom_download" in b.proto.id]
    assert download and "data.csv" in download[0].proto.label


def test_a_bad_csv_shows_the_parsers_error():
    at = pick("samples")
    at.file_uploader(key="train_csv_upload").set_value(("bad.csv", b"a,b,c\n" + b"1,2,3\n" * 20, "text/csv")).run()
    assert not at.exception, at.exception
    with pytest.raises(ConfigError) as err:
        samples_from_csv(b"a,b,c\n" + b"1,2,3\n" * 20)
    assert any(plain(str(err.value)) in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="train_train_button").disabled


def test_image_upload_on_the_page():
    at = pick("image")
    at.file_uploader(key="train_image_upload").set_value(("ink.png", png_bytes(blob_picture()), "image/png")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.checkbox(key="train_image_invert").value, "dark ink on light paper is guessed"
    assert at.session_state["train__config"].target == "image"
    assert not at.button(key="train_train_button").disabled
    at.checkbox(key="train_image_invert").uncheck().run()
    assert not at.exception and not at.error


def test_a_drawing_on_the_page_trains():
    at = pick("drawing")
    assert at.button(key="train_train_button").disabled
    assert any("Draw your target" in i.value for i in at.info)
    assert at.get("plotly_chart"), "the canvas"
    at.session_state["train__drawing"] = [[[x, y] for x in (-1.0, -0.8, -0.6) for y in (0.0, 0.2)], [[2.0, 2.0]]]
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["train__config"].target == "samples"
    assert at.button(key="train_draw_undo").disabled is False
    at.number_input(key="train_adam_iters").set_value(10_000).run()
    at.button(key="train_train_button").click().run()
    wait_for(at, lambda a: "Iteration" in (a.get("progress")[0].proto.text if a.get("progress") else ""))
    # Undo a stroke while it trains: the run keeps its data and the page says so, without a question.
    at.button(key="train_draw_undo").click().run()
    assert not at.warning and any("as it was when you pressed Train" in i.value for i in at.info)
    at.button(key="train_stop_button").click().run()
    at.button(key="train_draw_clear").click().run()
    assert at.session_state["train__drawing"] == [] and at.button(key="train_train_button").disabled


def test_fast_defaults_on_a_drawing_keep_the_drawing():
    at = pick("drawing")
    at.session_state["train__drawing"] = [[[0.0, 0.0], [0.2, 0.0], [0.0, 0.2]]]
    at.run()
    at.slider(key="train_width").set_value(8).run()
    at.button(key="train_preset_default").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="train_target").value == "drawing"
    assert at.session_state["train__config"] == default_config("8gaussians").replace(target="samples")
