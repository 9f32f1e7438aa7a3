"""QR codes of links, for a projector: a class scans the lesson link instead of typing it.

Pure Python (segno), no UI code: :func:`qr_png` draws a link as PNG bytes, and :func:`local_only` says
whether a link names this computer only (``localhost``), which no student's phone or laptop can open.
"""

from __future__ import annotations

import io
import ipaddress
from urllib.parse import urlsplit

import segno

__all__ = ["local_only", "qr_png"]


def qr_png(text: str, *, scale: int = 6) -> bytes:
    """``text`` (a link) as a QR code in a PNG image, ``scale`` pixels per module, with a quiet border.

    Medium error correction: the code still scans from the back of a room, or with a glare on the screen.

    Example:
        >>> qr_png("http://192.168.1.20:8501/train?target=moons")[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        True
    """
    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="png", scale=scale, border=2)
    return buf.getvalue()


def local_only(url: str | None) -> bool:
    """Whether ``url`` points at this computer only (``localhost``, 127.0.0.1, ::1, 0.0.0.0): other devices
    cannot open it.

    Example:
        >>> local_only("http://localhost:8501/train"), local_only("http://127.0.0.1:8501/")
        (True, True)
        >>> local_only("http://192.168.1.20:8501/train"), local_only("https://cnfviz.example.org/train")
        (False, False)
    """
    host = (urlsplit(url or "").hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
