"""The Learn page under AppTest: it renders, captions every chart, its knobs move its figures, and it ends in Train."""

import re
import shutil
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "app_pages" / "learn.py"
N_CHARTS = 7

# key -> (new value, index of the chart it drives), in page order.
KNOBS = {
    "learn_cov_a": (0.5, 0),
    "learn_cov_b": (4.0, 0),
    "learn_lin_trace": (-1.0, 1),
    "learn_lin_rotation": (0.0, 1),
    "learn_hutch_dim": (2, 2),
    "learn_hutch_probes": (16, 2),
    "learn_tspan": (1.0, 3),
    "learn_reg": ("both", 4),
    "learn_sample_t": (0, 5),
    "learn_fm_pairing": ("ot", 6),
}


@pytest.fixture(autouse=True)
def _fresh_caches():
    # Cached demos would otherwise leak between tests and hide a page that fails on a cold start.
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def _run(path: Path = PAGE) -> AppTest:
    at = AppTest.from_file(str(path), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _leaves(node):
    """Elements in reading order, descending into columns and other containers."""
    for child in node.children.values():
        if getattr(child, "type", None) in (None, "block") or type(child).__name__ == "Block":
            yield from _leaves(child)
        else:
            yield child


def _specs(at: AppTest) -> list[str]:
    return [chart.proto.spec for chart in at.get("plotly_chart")]


def _widget(at: AppTest, key: str):
    for kind in (at.slider, at.select_slider, at.radio):
        for widget in kind:
            if widget.key == key:
                return widget
    raise LookupError(key)


def test_page_renders_every_section_with_prefixed_keys():
    at = _run()
    assert len(at.get("plotly_chart")) == N_CHARTS
    headers = [h.value for h in at.header]
    assert headers[0].startswith("1. Change of variables") and headers[5].startswith("6. Sampling")
    assert len(at.latex) >= 4  # each idea states its formula
    widgets = [*at.slider, *at.select_slider, *at.radio, *at.button]
    assert {w.key for w in widgets} == {*KNOBS, "learn_open_train"}
    assert not at.info, "the precomputed assets should load"


def test_every_chart_has_a_one_line_caption_right_below():
    at = _run()
    leaves = list(_leaves(at.main))
    charts = [i for i, e in enumerate(leaves) if e.type == "plotly_chart"]
    assert len(charts) == N_CHARTS
    for i in charts:
        caption = leaves[i + 1]
        assert caption.type == "caption", f"chart {i} is followed by {caption.type}"
        assert caption.value.startswith("What you see") and "\n" not in caption.value
    assert len(at.caption) == N_CHARTS


@pytest.mark.parametrize("key", list(KNOBS))
def test_each_knob_changes_its_own_figure_only(key):
    at = _run()
    before = _specs(at)
    value, chart = KNOBS[key]
    _widget(at, key).set_value(value).run()
    assert not at.exception
    after = _specs(at)
    assert after[chart] != before[chart], f"{key} did not change chart {chart}"
    assert [s for i, s in enumerate(after) if i != chart] == [s for i, s in enumerate(before) if i != chart]


def test_captions_follow_the_knobs():
    at = _run()
    _widget(at, "learn_cov_a").set_value(-0.5).run()
    _widget(at, "learn_cov_b").set_value(2.5).run()
    assert "x = -0.5·z + 2.5" in at.caption[0].value
    _widget(at, "learn_tspan").set_value(4.0).run()
    assert "time span (0, 4)" in at.caption[3].value


def test_page_ends_with_the_button_to_the_seed_tutorial():
    at = _run()
    leaves = list(_leaves(at.main))
    assert leaves[-1].type == "button" and leaves[-1].key == "learn_open_train"
    assert "seed tutorial" in at.button(key="learn_open_train").label


def test_button_opens_the_train_page_with_the_seed_preset():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/learn.py")
    at.run()
    assert not at.exception
    at.button(key="learn_open_train").click().run()
    # The Train page applied the preset and rewrote the address bar as a full, shareable link.
    from cnfviz.features.links import parse_query
    from cnfviz.training.presets import SEED_CONFIG

    assert parse_query(dict(at.query_params)).config == SEED_CONFIG
    assert not [b for b in at.button if b.key == "learn_open_train"], "still on the Learn page"


def test_page_without_precomputed_assets_still_renders_the_live_sections(tmp_path):
    (tmp_path / "app_pages").mkdir()
    shutil.copy(PAGE, tmp_path / "app_pages" / "learn.py")
    at = _run(tmp_path / "app_pages" / "learn.py")
    assert len(at.get("plotly_chart")) == 4
    assert len(at.info) == 3 and "make_learn_assets.py" in at.info[0].value


def test_the_flow_matching_section_draws_its_demo_and_links_the_comparison():
    at = _run()
    headers = [h.value for h in at.header]
    assert headers[6].startswith("7. Two ways to train")
    caption = at.caption[6].value
    assert "pairs of which cross" in caption
    _widget(at, "learn_fm_pairing").set_value("ot").run()
    assert not at.exception
    crossings = [int(c.value.split(" pairs of which cross")[0].split()[-1]) for c in at.caption if "cross" in c.value]
    assert crossings and crossings[0] < int(caption.split(" pairs of which cross")[0].split()[-1])
    assert any("compare?preset=two_ways" in m.value for m in at.markdown)


def test_a_table_of_contents_at_the_top_links_every_section():
    at = _run()
    leaves = list(_leaves(at.main))
    first_header = next(i for i, e in enumerate(leaves) if e.type == "header" or getattr(e, "tag", "") == "h2")
    contents = [e for e in leaves[:first_header] if e.type == "markdown" and "**Contents**" in e.value]
    assert len(contents) == 1, "the contents come before the first lesson"
    # Above the first lesson: the title, the introduction and the contents, nothing else (no stray text).
    assert [e.type for e in leaves[:first_header]] == ["title", "markdown", "markdown"]
    links = re.findall(r"\[([^\]]+)\]\(#([a-z0-9-]+)\)", contents[0].value)
    anchors = [h.proto.anchor for h in at.header]
    titles = [h.value for h in at.header]
    assert [title for title, _ in links] == titles and [anchor for _, anchor in links] == anchors
    assert len(set(anchors)) == len(anchors) == 8 and all(anchors)
