"""The names of a page's session state: its widget keys (``train_width``) and its registered own keys (``train__dim``).

A widget key is the page prefix, one underscore and the control's name; a session key that is no widget's
is the prefix, two underscores and a name from :data:`SESSION_KEYS`, so that the two can never collide and
a reader finds every piece of state a page keeps, and what it holds, in one table. ``tests/ui/test_keys.py``
fails when code under ``cnfviz/ui/`` uses a ``{prefix}__name`` key that is not in the table.

Example:
    >>> widget_key("train", "width"), session_key("train", "dim")
    ('train_width', 'train__dim')
"""

from __future__ import annotations

__all__ = ["SESSION_KEYS", "session_key", "widget_key"]

SESSION_KEYS: dict[str, str] = {
    # The controls (cnfviz.ui.sidebar)
    "values": "the controls' values of record, by widget key: widget state may be dropped, these are not",
    "base_config": "the config the controls build on (the last one applied)",
    "config": "the config the controls read last (None while invalid)",
    "dim": "the dimension (1 or 2) the settings were made for",
    "last_target": "the picker entry of the last run, to notice a new one",
    "custom_source": "the custom picker entry last shown (samples, image, drawing)",
    "notice": "a toast to show once, on the next run (a preset or defaults loaded)",
    # Custom targets (cnfviz.ui.custom_target)
    "custom_": "prefix of custom_<source>: the built target of an upload or drawing, by source",
    "custom_samples": "the samples of the last uploaded CSV",
    "custom_preview_figure": "the custom target's cached preview figure",
    "drawing": "the strokes drawn, a list of lists of [x, y] grid points",
    "image_file": "the id of the picture the image target was built from",
    # Runs and views (cnfviz.ui.actions, views, checkpoint_panel)
    "request": "a run request made in a callback, carried out in the page",
    "start_error": "why the last start was refused, shown once",
    "checkpoint": "the checkpoint loaded on the page",
    "drawn": "what the live views drew last, to skip an unchanged redraw",
    "figures": "the last figures drawn, by view",
    "loss_skeleton": "the loss chart's empty figure, kept between polls",
    "samples": "the samples shown in the results, for their download",
    "stream_rerun": "the live channel's last request for a page rerun (cnfviz.ui.stream), to act on it once",
    "refresh_costs": "what each view's refresh cost (the session's, under the empty prefix: ``__refresh_costs``)",
    # The Compare page (cnfviz.ui.compare)
    "started": "whether a comparison was started",
    "query": "the comparison's query as last read",
    # Links and layout (cnfviz.ui.links, layout)
    "hidden": "the controls a lesson link hides",
    "link_notices": "what a link got wrong, shown once",
    "present": "presentation mode on or off",
    "present_seen": "the link's presentation flag already applied",
    "url_mine": "the query this page wrote itself, so a change of address is told from its own",
}
"""Every session-state key of a page that is no widget's, as ``{prefix}__<name>``, with what it holds.
A name ending in ``_`` registers a family (``custom_`` for ``custom_samples``, ``custom_image``...)."""


def widget_key(prefix: str, name: str) -> str:
    """The widget key of control ``name`` on the page ``prefix``: ``widget_key("train", "lr")`` is ``train_lr``."""
    return f"{prefix}_{name}"


def session_key(prefix: str, name: str) -> str:
    """The session-state key ``{prefix}__{name}`` of a registered name; a ValueError for any other.

    Example:
        >>> session_key("train", "values")
        'train__values'
    """
    if name not in SESSION_KEYS and not any(k.endswith("_") and name.startswith(k) for k in SESSION_KEYS):
        raise ValueError(f'unregistered session key "{name}". Must be one of {sorted(SESSION_KEYS)}')
    return f"{prefix}__{name}"
