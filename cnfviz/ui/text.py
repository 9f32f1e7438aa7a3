"""Showing text that came from a user (an upload's name, a link's value, an error quoting either) literally.

Streamlit's ``st.error``, ``st.warning``, ``st.info``, ``st.caption`` and ``st.markdown`` render
markdown, and more: ``:red[...]`` colours, ``:material/...:`` icons, ``$...$`` LaTeX. A file named
``[click](https://evil.example)`` would become a link, and ``**`` would shout. :func:`plain` escapes every
character those syntaxes use, so the message shows exactly what was typed, and nothing is ever rendered
as HTML (``unsafe_allow_html`` is never used with user text). It also shows characters that draw nothing or
turn the text around (a right-to-left override in a link would make a notice read backwards) as visible
marks, and cuts long text (:func:`cnfviz._text.printable`).
"""

from __future__ import annotations

import re

from .._text import MAX_SHOWN_CHARS, printable

__all__ = ["plain"]

# Every ASCII punctuation character may be backslash-escaped in CommonMark, and an escaped one is
# shown as itself. Escaping all of them (not a hand-picked list) also disarms Streamlit's own
# directives, which all start with ":" or "$".
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def plain(text: object, limit: int | None = MAX_SHOWN_CHARS) -> str:
    """``text`` escaped so that markdown shows it literally, on one line per line of input.

    Invisible and direction-changing characters become marks such as ``⟨U+202E⟩``, and text over ``limit``
    characters is cut, saying how long it was.

    Example:
        >>> print(plain("**a** [b](c) :red[d] $e$"))
        \\*\\*a\\*\\* \\[b\\]\\(c\\) \\:red\\[d\\] \\$e\\$
        >>> print(plain("abc\\u202edcba"))
        abc⟨U\\+202E⟩dcba
    """
    escaped = _PUNCTUATION.sub(r"\\\1", printable(text, limit))
    # Two trailing spaces make a hard line break, so a multi-line message keeps its lines.
    return "  \n".join(escaped.splitlines())
