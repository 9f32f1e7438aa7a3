"""Headless Chromium as every benchmark and browser test launches it."""

from __future__ import annotations

import os
import shutil
from typing import Any

__all__ = ["CHROMIUM_ARGS", "chromium_executable", "launch_options"]

# No sandbox (containers run as root), /tmp instead of a small /dev/shm, and none of Chromium's own
# background traffic (updates, sync, safe browsing lists), which would be load the app did not cause.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_executable() -> str | None:
    """Debian's Chromium (``/usr/bin/chromium``), or any ``chromium`` on PATH; None without one."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def launch_options(executable: str | None = None) -> dict[str, Any]:
    """Keyword arguments for Playwright's ``chromium.launch``: headless, with :data:`CHROMIUM_ARGS`."""
    return {"executable_path": executable or chromium_executable(), "headless": True, "args": list(CHROMIUM_ARGS)}
