"""User text shown plainly: markdown escaped, invisible and direction-changing characters marked, long text cut,
and the same for plotly's HTML-reading titles and legends; the Compare page's run labels included."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from cnfviz import default_config
from cnfviz._text import figure_text, printable
from cnfviz.figures.compare import loss_curves_figure
from cnfviz.ui.text import plain
from tests.apptest import ROOT, fresh_caches  # noqa: F401 - fresh_caches is an autouse fixture

HIDDEN = {
    "right-to-left-override": "\u202e",
    "left-to-right-override": "\u202d",
    "right-to-left-isolate": "\u2067",
    "pop-directional-isolate": "\u2069",
    "zero-width-space": "\u200b",
    "zero-width-joiner": "\u200d",
    "right-to-left-mark": "\u200f",
    "word-joiner": "\u2060",
    "byte-order-mark": "\ufeff",
    "soft-hyphen": "\u00ad",
    "tag-letter": "\U000e0041",
    "escape": "\x1b",
    "nul": "\x00",
    "bell": "\x07",
    "line-separator": "\u2028",
    "hangul-filler": "\u3164",
    "braille-blank": "\u2800",
    "private-use": "\ue000",
}


@pytest.mark.parametrize("char", list(HIDDEN.values()), ids=list(HIDDEN))
def test_a_character_that_draws_nothing_or_turns_text_around_is_marked(char):
    text = f"safe{char}txt.exe"
    mark = f"⟨U+{ord(char):04X}⟩"
    assert printable(text) == f"safe{mark}txt.exe"
    assert char not in plain(text) and "U\\+" in plain(text)
    assert char not in figure_text(text)


def test_ordinary_text_in_any_script_is_left_alone():
    for text in ("héllo wörld", "日本語のラベル", "λ₁ = λ₂ = 0.1", "emoji ✓ 🚀", "tab\there", "two\nlines"):
        assert printable(text) == text


def test_a_pile_of_combining_marks_is_cut_to_two():
    assert printable("e" + "\u0301" * 50 + "x") == "e\u0301\u0301x"


def test_long_text_is_cut_saying_how_long_it_was():
    assert printable("a" * 10_000) == "a" * 2_000 + "… (10,000 characters)"
    assert plain("b" * 100, limit=10).startswith("b" * 10 + "…")
    assert figure_text("c" * 500).endswith("… (500 characters)") and len(figure_text("c" * 500)) < 110


def test_markdown_is_escaped_and_entities_cannot_smuggle_characters():
    text = "**b** [x](http://e) :red[y] $z$ &#x202E; <b>"
    shown = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", plain(text))
    assert shown == text  # what the reader sees is what was typed
    assert "\\&" in plain(text), "an entity is escaped, so it is not decoded into a character"


def test_figure_text_disarms_plotly_markup():
    label = "<a href='https://e.example'>run</a><b>x</b><span style='font-size:90px'>y</span>"
    fig = loss_curves_figure([(label, {"iteration": [1, 2], "nll": [1.0, 0.5], "nfe": [4, 8]})])
    names = {t.name for t in fig.data}
    assert names == {figure_text(label)}
    assert all("<" not in n and ">" not in n for n in names)


COMPARE = str(ROOT / "app_pages" / "compare.py")
_CONFIG = default_config("normal", adam_iters=5).to_json().encode()


def test_compare_run_labels_from_file_names_are_plain_text():
    at = AppTest.from_file(COMPARE, default_timeout=60).run()
    at.radio(key="compare_mode").set_value("files").run()
    hostile = "**bold**[x](javascript:e):red[y]\u202eevil.json"
    files = [
        ("good.json", _CONFIG, "application/json"),
        (hostile, _CONFIG.replace(b'"seed": 0', b'"seed": 1'), "application/json"),
    ]
    at.file_uploader(key="compare_upload").set_value(files).run()
    assert not at.exception
    captions = [c.value for c in at.caption if "runs:" in c.value]
    assert captions, [c.value for c in at.caption]
    caption = captions[0]
    assert "**bold**" not in caption and "[x](javascript:e)" not in caption and ":red[y]" not in caption
    assert "\u202e" not in caption and "⟨U\\+202E⟩" in caption
    assert "\\*\\*bold\\*\\*" in caption
