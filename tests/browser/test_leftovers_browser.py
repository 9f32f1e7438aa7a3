"""A closed tab leaves nothing behind on the server: its uploads, its downloads' data and its session state
go once Streamlit's ``server.disconnectedSessionTTL`` has passed, also when it closed mid-upload.

Streamlit keeps a disconnected session for that TTL (so that a reconnecting browser finds it), but reaps
an expired one only when another session later disconnects, and then without shutting it down: its
uploaded files and media stayed in the server for good. The server here runs with a TTL of 4 s and its
memory statistics on (``/_stcore/metrics``, ``cache_memory_bytes`` by kind).
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from .conftest import StreamlitApp

pytestmark = pytest.mark.browser

TTL_S = 4
ENV = {
    "CNFVIZ_RECONNECT_GRACE": "1",
    "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(TTL_S),
    "STREAMLIT_SERVER_ENABLE_EXPENSIVE_MEMORY_STATS": "true",
}
UPLOADS = "UploadedFileManager"


def held_bytes(url: str) -> dict[str, int]:
    """The server's ``cache_memory_bytes`` by cache type (uploads, media, session state...)."""
    with urllib.request.urlopen(f"{url}/_stcore/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, int] = {}
    for m in re.finditer(r'^cache_memory_bytes\{cache_type="([^"]+)"[^}]*\} (\d+)', text, re.M):
        out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return out


def wait_until(probe: Callable[[], dict[str, int]], ok: Callable[[dict[str, int]], bool], what: str) -> dict:
    deadline = time.monotonic() + TTL_S + 40
    while True:
        value = probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; the server holds {value}")
        time.sleep(0.5)


def samples_csv(n: int, seed: int = 0) -> bytes:
    ring = np.random.default_rng(seed).normal(size=(n, 2))
    return ("x,y\n" + "\n".join(f"{a:.6f},{b:.6f}" for a, b in ring)).encode()


def upload(app: StreamlitApp, content: bytes) -> None:
    app.key("train_csv_upload").locator('input[type="file"]').set_input_files(
        files=[{"name": "ring.csv", "mimeType": "text/csv", "buffer": content}]
    )


def test_a_closed_tab_leaves_no_upload_download_or_session_state_behind(
    start_server: Callable[[str, dict[str, str]], str], new_app: Callable[[str], StreamlitApp], artifacts_dir: Path
):
    url = start_server("leftovers", ENV)
    before = held_bytes(url)
    app = new_app(url)
    app.page.set_default_timeout(60_000)  # a busy machine
    app.goto("train")
    app.pick("train_target", "Upload", "Upload samples (CSV)")
    upload(app, samples_csv(2000))
    app.key("train_custom_preview").locator(".js-plotly-plot").wait_for(state="visible", timeout=30_000)
    app.wait_idle()
    assert app.errors() == []
    # The toolbar's Code popover offers the data back as a download: media the server keeps for the session.
    app.key("train_code").locator("button").first.click()
    app.key("train_custom_download").wait_for(state="attached", timeout=30_000)
    assert app.key("train_custom_download").count() == 1
    held = held_bytes(url)
    assert held.get(UPLOADS, 0) > 30_000, held  # the 2,000 rows
    media = [k for k in held if "media" in k]
    assert media and sum(held[k] for k in media) > sum(before.get(k, 0) for k in media), held

    # A second tab closes while its (larger) upload is on its way.
    other = new_app(url)
    other.page.set_default_timeout(60_000)
    other.goto("train")
    other.pick("train_target", "Upload", "Upload samples (CSV)")
    upload(other, samples_csv(60_000, seed=1))
    other.page.context.close()
    app.page.context.close()

    after = wait_until(
        lambda: held_bytes(url),
        lambda h: h.get(UPLOADS, 0) == 0 and all(h.get(k, 0) <= before.get(k, 0) for k in media),
        "the closed tabs' uploads and download data to go",
    )
    assert after.get("st_session_state", 0) <= before.get("st_session_state", 0)
    log = (artifacts_dir / "streamlit-leftovers.log").read_text()
    assert "cnfviz" not in "".join(re.findall(r"Traceback.*?(?=\n\S)", log, re.S)), "no traceback of ours"
