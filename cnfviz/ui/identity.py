"""Who a session belongs to: one browser, for a shared server's fair share per student.

A school's students share one IP address, so the address cannot tell them apart. A browser can: Streamlit
gives each one an XSRF cookie (``_streamlit_xsrf``) holding 16 random bytes that it keeps for as long as the
cookie lives, re-masked on every response (``2|mask|masked token|time``). :func:`browser_id` unmasks the
token and hashes it, so every tab of one browser has one id and the id reveals nothing of the token.

Why not a cookie of our own, signed with an HMAC: signing stops forging a *given* id, and this token is
unguessable already (a student cannot claim a classmate's share); neither stops a script from dropping its
cookies and arriving as a new browser each time. That limit, and what bounds such a script anyway, is the
README's threat model.
"""

from __future__ import annotations

import binascii
import hashlib

import streamlit as st

__all__ = ["XSRF_COOKIE", "browser_id", "token_id"]

XSRF_COOKIE = "_streamlit_xsrf"


def token_id(cookie: str | None) -> str | None:
    """The stable id inside an XSRF cookie value (version 2, masked, or version 1), hashed; None if unreadable.

    Example:
        >>> a = token_id("2|01020304|2123212725272523292b292f2d2f2d2b|1700000000")
        >>> b = token_id("2|00000000|202122232425262728292a2b2c2d2e2f|1700000001")
        >>> a == b, len(a)
        (True, 16)
        >>> token_id("garbage") is None
        True
    """
    value = (cookie or "").strip("\"' ")
    try:
        if value.startswith("2|"):
            _, mask_hex, masked_hex, _ = value.split("|")
            mask, masked = binascii.a2b_hex(mask_hex), binascii.a2b_hex(masked_hex)
            if len(mask) != 4 or len(masked) < 8:
                return None
            token = bytes(b ^ mask[i % 4] for i, b in enumerate(masked))
        elif len(value) >= 16 and all(c in "0123456789abcdef" for c in value.lower()):
            token = binascii.a2b_hex(value)  # version 1: the token in hex, unmasked
        else:
            return None
    except (ValueError, binascii.Error):
        return None
    return hashlib.sha256(b"cnfviz-browser:" + token).hexdigest()[:16]


def browser_id() -> str | None:
    """This session's browser, as :func:`token_id` of its XSRF cookie; None without one (XSRF protection off,
    or no browser: a test), where a caller falls back to the session id (each tab its own student)."""
    try:
        cookies = st.context.cookies
    except Exception:  # outside a script run: no request to read
        return None
    return token_id(cookies.get(XSRF_COOKIE)) if cookies else None
