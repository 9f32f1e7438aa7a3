"""QR codes of lesson links, and the check that a link can be opened from another device."""

from __future__ import annotations

import io

import numpy as np
import pytest
import segno
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnfviz.ui.qr import local_only, qr_png
from tests.apptest import fresh_caches  # noqa: F401 - fresh_caches is an autouse fixture

LINK = "http://192.168.1.20:8501/train?target=moons&hide=solver,trace&autostart=1"


def test_a_link_becomes_a_png_of_its_qr_matrix():
    png = qr_png(LINK, scale=5)
    image = Image.open(io.BytesIO(png)).convert("L")
    matrix = segno.make(LINK, error="m").matrix
    modules = len(matrix)
    assert image.size == ((modules + 4) * 5, (modules + 4) * 5), "2 modules of quiet border each side"
    pixels = np.asarray(image)
    # Every module is drawn where the matrix says: dark for 1, light for 0 (sampled at its centre).
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            assert (pixels[(r + 2) * 5 + 2, (c + 2) * 5 + 2] < 128) == bool(dark)


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://localhost:8501/train", True),
        ("http://127.0.0.1:8501/train?x=1", True),
        ("http://[::1]:8501/", True),
        ("http://0.0.0.0:8501/", True),
        ("http://app.localhost/", True),
        ("http://192.168.1.20:8501/train", False),
        ("https://cnfviz.example.org/train", False),
        ("", False),
    ],
)
def test_local_only(url, local):
    assert local_only(url) is local


def _qr_app(link: str) -> None:
    from cnfviz.ui.links import link_qr

    link_qr("train", link)


@pytest.mark.parametrize(("link", "warned"), [("http://localhost:8501/train?target=moons", True), (LINK, False)])
def test_the_lesson_qr_warns_about_a_localhost_link(link, warned):
    at = AppTest.from_function(_qr_app, args=(link,), default_timeout=30).run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == 1, "the QR code is shown"
    assert bool(at.warning) is warned
    if warned:
        assert "localhost" in at.warning[0].value and "0.0.0.0" in at.warning[0].value
