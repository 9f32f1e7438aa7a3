"""User text made safe to print: invisible and direction-changing characters shown as visible marks, long text cut."""

from __future__ import annotations

import html
import re
import unicodedata

__all__ = ["MAX_LABEL_CHARS", "MAX_SHOWN_CHARS", "figure_text", "printable"]

MAX_SHOWN_CHARS = 2_000
"""The most characters of one piece of user text (or of a message quoting it) shown by default."""
MAX_LABEL_CHARS = 80
"""The most characters of a label (a run's name in a legend, a title, a table) shown."""

_MAX_MARKS = 2  # combining marks kept on one character: more only pile up over the text around them
# Letters that draw nothing (Hangul fillers, the blank Braille pattern): a name made of them looks empty.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_KEEP = frozenset("\n\r\t")


def _mark(c: str) -> str:
    return f"⟨U+{ord(c):04X}⟩"


def _hidden(c: str) -> bool:
    if c in _KEEP:
        return False
    cat = unicodedata.category(c)
    # Cf: bidirectional overrides and isolates, zero-width spaces and joiners, the BOM, tag characters;
    # Cc: control characters; Co/Cn/Cs: private, unassigned and lone surrogates; Zl/Zp: line separators.
    return cat in ("Cf", "Cc", "Co", "Cn", "Cs", "Zl", "Zp") or c in _BLANK_LETTERS


_COMBINING = "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
_RUN_OF_MARKS = re.compile(f"({_COMBINING}{{{_MAX_MARKS}}}){_COMBINING}+")


def printable(text: object, limit: int | None = MAX_SHOWN_CHARS) -> str:
    """``text`` as it can be shown to a person without deceiving them.

    Characters that draw nothing or change the direction of what follows (``U+202E`` RIGHT-TO-LEFT OVERRIDE,
    zero-width spaces, control characters) become visible marks such as ``⟨U+202E⟩``; a pile of combining
    marks is cut to two; text longer than ``limit`` characters is cut, saying how long it was. Line breaks
    and tabs are kept. Markdown is not escaped here: :func:`cnfviz.ui.text.plain` does that on top.

    Example:
        >>> printable("abc\\u202edcba")
        'abc⟨U+202E⟩dcba'
        >>> printable("x" * 10, limit=4)
        'xxxx… (10 characters)'
    """
    s = str(text)
    n = len(s)
    if limit is not None and n > limit:
        s = s[:limit]
    if not s.isascii():
        s = _RUN_OF_MARKS.sub(r"\1", s)
        s = "".join(_mark(c) if _hidden(c) else c for c in s)
    elif not s.isprintable():
        s = "".join(_mark(c) if _hidden(c) else c for c in s)
    if limit is not None and n > limit:
        s += f"… ({n:,} characters)"
    return s


def figure_text(text: object, limit: int | None = MAX_LABEL_CHARS) -> str:
    """``text`` for a plotly title, legend or hover label: :func:`printable`, with ``&``, ``<`` and ``>`` as
    entities, since plotly reads ``<a href=...>``, ``<b>`` and ``<span style=...>`` in those as markup.

    Example:
        >>> figure_text("<a href='x'>run</a>")
        "&lt;a href='x'&gt;run&lt;/a&gt;"
    """
    return html.escape(printable(text, limit), quote=False)
