"""Showing text that came from a user (an upload's name, a link's value, an error quoting either) literally.

Streamlit's ``st.error``, ``st.warning``, ``st.info``, ``st.caption`` and ``st.markdown`` render
markdown, and more: ``:red[...]`` colours, ``:material/...:`` icons, ``$...$`` LaTeX. A file named
``[click](https://evil.example)`` would become a link, and ``**`` would shout. :func:`plain` escapes every
character those syntaxes use, so the message shows exactly what was typed, and nothing is ever rendered
as HTML (``unsafe_allow_html`` is never used with user text).
"""

from __future__ import annotations

import re

__all__ = ["plain"]

# Every ASCII punctuation character may be backslash-escaped in CommonMark, and an escaped one is
# shown as itself. Escaping all of them (not a hand-picked list) also disarms Streamlit's own
# directives, which all start with ":" or "$".
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def plain(text: object) -> str:
    """``text`` escaped so that markdown shows it literally, on one line per line of input.

    Example:
        >>> print(plain("**a** [b](c) :red[d] $e$"))
        \\*\\*a\\*\\* \\[b\\]\\(c\\) \\:red\\[d\\] \\$e\\$
    """
    escaped = _PUNCTUATION.sub(r"\\\1", str(text))
    # Two trailing spaces make a hard line break, so a multi-line message keeps its lines.
    return "  \n".join(escaped.splitlines())
