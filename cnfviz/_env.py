"""The operator's settings: every ``CNFVIZ_*`` environment variable, declared once and read one way.

Each variable is an :class:`EnvVar` in :data:`VARIABLES` (name, type, bounds, default, help), and
:func:`read` is the only parser: a value it cannot use raises a :class:`~cnfviz.ConfigError` whose ``field``
is the variable's name. Nothing here turns a typo into a default: ``abc``, ``inf`` and ``-1`` are errors, and
``0`` is either a value (a grace of zero seconds) or refused, never "off". Where a variable may switch its
limit off, only the words ``none`` or ``off`` do it.

A command-line tool lets the error end the command (one line, status 2). A server checks every variable at
start-up (:func:`log_environment`) and logs each one's value, or its error and what happens instead: a variable
read once when the server starts (``falls_back``) keeps its default (:func:`read_or_default`); a limit is never
lifted by a typo, so every run that needs it is refused with the same error, naming the variable.
The README's table of variables is :func:`markdown_table` (a test keeps the two equal).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._validation import ConfigError, check_int_range, check_range

__all__ = [
    "OFF_WORDS",
    "VARIABLES",
    "EnvVar",
    "environment_report",
    "log_environment",
    "markdown_table",
    "read",
    "read_or_default",
]

OFF_WORDS = ("none", "off")
"""The only words that switch a limit off (where the variable allows it); ``0`` never does."""

_log = logging.getLogger("cnfviz")


@dataclass(frozen=True)
class EnvVar:
    """One environment variable.

    Arguments:
        name: ``CNFVIZ_...``.
        kind: ``"int"``, ``"float"`` or ``"text"``.
        default: the value when unset (``None``: no value; the reader decides, e.g. no limit).
        help: one sentence for the README.
        default_text: how the README states the default when it is not simply ``default``.
        lo, hi: bounds of a number (inclusive unless ``lo_open``/``hi_open``).
        can_be_off: ``none``/``off`` are accepted and read as ``None`` (no limit).
        falls_back: a server read at start-up (before anyone could be told) keeps the default on a bad value;
            otherwise every use raises, so whoever needs it reads the error (a limit is never silently lifted).
    """

    name: str
    kind: str
    default: Any
    help: str
    default_text: str | None = None
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    can_be_off: bool = False
    falls_back: bool = False

    def parse(self, raw: str) -> Any:
        """``raw`` as this variable's value; raises ConfigError naming the variable."""
        text = raw.strip()
        if self.kind == "text":
            return text
        if self.can_be_off and text.lower() in OFF_WORDS:
            return None
        rng = self.allowed()
        try:
            if self.kind == "int":
                lo = None if self.lo is None else int(self.lo)
                hi = None if self.hi is None else int(self.hi)
                return check_int_range(text, self.name, lo=lo, hi=hi)
            return check_range(text, self.name, lo=self.lo, hi=self.hi, lo_open=self.lo_open, hi_open=self.hi_open)
        except ConfigError:
            raise ConfigError(
                f'{self.name}: invalid value "{raw}". Must be {rng}', field=self.name, allowed=rng
            ) from None

    def allowed(self) -> str:
        """What the variable accepts, in words."""
        if self.kind == "text":
            return "text"
        what = "an integer" if self.kind == "int" else "a number"
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        left = "(" if self.lo_open or self.lo is None else "["
        right = ")" if self.hi_open or self.hi is None else "]"
        rng = f"{left}{lo}, {hi}{right}"
        return f"{what} in {rng}" + (" or none" if self.can_be_off else "")


VARIABLES: dict[str, EnvVar] = {
    v.name: v
    for v in (
        EnvVar(
            "CNFVIZ_MAX_RUN_MB",
            "float",
            None,
            "the most memory one run may need, in MB (`none`: only the machine's memory)",
            default_text="server 2048; CLI 80 % of RAM",
            lo=0,
            lo_open=True,
            can_be_off=True,
        ),
        EnvVar(
            "CNFVIZ_MAX_STEP_SECONDS",
            "float",
            None,
            "the longest one training iteration may be estimated to take, in seconds (`none`: no cap)",
            default_text="server 20; CLI none",
            lo=0,
            lo_open=True,
            can_be_off=True,
        ),
        EnvVar(
            "CNFVIZ_SERVER_MB",
            "float",
            None,
            "the memory a server's admitted runs may need together, in MB",
            default_text="75 % of the memory the server can see (cgroup limit or RAM)",
            lo=1,
            falls_back=True,
        ),
        EnvVar(
            "CNFVIZ_RUNS_PER_STUDENT",
            "int",
            4,
            "the most runs one browser (one student) holds at once on a server, Compare included",
            lo=1,
            hi=1024,
            falls_back=True,
        ),
        EnvVar(
            "CNFVIZ_SHARED_RUN_SECONDS",
            "float",
            1800.0,
            "the time budget a server gives a run that has none (`none`: unbounded)",
            lo=1,
            hi=86_400 * 7,
            can_be_off=True,
            falls_back=True,
        ),
        EnvVar("CNFVIZ_MAX_JOBS", "int", 32, "runs a server admits at once", lo=1, hi=4096, falls_back=True),
        EnvVar(
            "CNFVIZ_RECONNECT_GRACE",
            "float",
            60.0,
            "seconds a closed tab's runs wait for it to reconnect (0: none)",
            lo=0,
            hi=86_400,
            hi_open=True,
            falls_back=True,
        ),
        EnvVar(
            "CNFVIZ_RAY_ADDRESS",
            "text",
            "",
            "the Ray head (`HOST:PORT`) a server's runs train on; unset: this process",
            default_text="unset",
        ),
        EnvVar(
            "CNFVIZ_BACKEND",
            "text",
            "",
            "where a server's runs train: `process` (worker processes), `local` (threads of the server) or `ray`",
            default_text="process",
        ),
        EnvVar(
            "CNFVIZ_WORKERS",
            "int",
            None,
            "worker processes the process backend keeps",
            default_text="one per core but one, from 1 to 8",
            lo=1,
            hi=64,
        ),
        EnvVar("CNFVIZ_RAY_STACK_SIZE", "int", 8, "live runs per Ray stack actor (1: no stacking)", lo=1, hi=1024),
        EnvVar(
            "CNFVIZ_CACHE_DIR",
            "text",
            "",
            "the folder for the live chart's static files",
            default_text="the system's temporary folder",
        ),
    )
}
"""Every ``CNFVIZ_*`` variable the package reads (a test checks the code names no other)."""


_DECLARED = object()


def read(name: str, environ: Mapping[str, str] | None = None, *, default: Any = _DECLARED) -> Any:
    """The value of the variable ``name``: ``default`` (else its declared default) when unset or blank, else
    its parsed value.

    Raises:
        ConfigError: with ``field=name``, when the value is not usable (``abc``, ``inf``, out of bounds).

    Example:
        >>> read("CNFVIZ_MAX_JOBS", {"CNFVIZ_MAX_JOBS": "4"}), read("CNFVIZ_MAX_JOBS", {})
        (4, 32)
        >>> read("CNFVIZ_MAX_RUN_MB", {"CNFVIZ_MAX_RUN_MB": "inf"})
        Traceback (most recent call last):
        ...
        cnfviz._validation.ConfigError: CNFVIZ_MAX_RUN_MB: invalid value "inf". Must be a number in (0, inf) or none
    """
    var = VARIABLES[name]
    raw = (os.environ if environ is None else environ).get(name)
    if raw is None or not raw.strip():
        return var.default if default is _DECLARED else default
    return var.parse(raw)


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def read_or_default(name: str, environ: Mapping[str, str] | None = None, *, default: Any = _DECLARED) -> Any:
    """:func:`read`, or the default where the value is not usable (a server's fallback), logged once per value."""
    try:
        return read(name, environ, default=default)
    except ConfigError as err:
        raw = (os.environ if environ is None else environ).get(name, "")
        with _warned_lock:
            first = (name, raw) not in _warned
            _warned.add((name, raw))
        if first:
            _log.error("%s; using the default (%s)", err, _default_text(VARIABLES[name]))
        return VARIABLES[name].default if default is _DECLARED else default


def _default_text(var: EnvVar) -> str:
    if var.default_text is not None:
        return var.default_text
    if isinstance(var.default, float) and math.isfinite(var.default) and var.default == int(var.default):
        return f"{var.default:g}"
    return str(var.default)


def environment_report(environ: Mapping[str, str] | None = None) -> list[tuple[str, bool, str]]:
    """Each set ``CNFVIZ_*`` variable as ``(name, usable, line)``: its value, or its error and the fallback.

    A ``CNFVIZ_*`` name that no variable declares is reported too (a typo of a name, say).

    Example:
        >>> environment_report({"CNFVIZ_MAX_JOBS": "0", "CNFVIZ_MAX_RUN_MB": "512"})[0][:2]
        ('CNFVIZ_MAX_JOBS', False)
    """
    env = os.environ if environ is None else environ
    out = []
    for name in sorted(k for k in env if k.startswith("CNFVIZ_")):
        var = VARIABLES.get(name)
        if var is None:
            known = ", ".join(VARIABLES)
            out.append((name, False, f"{name} is not a cnfviz setting and is ignored; the settings are {known}"))
            continue
        try:
            value = read(name, env)
        except ConfigError as err:
            then = f"using the default ({_default_text(var)})" if var.falls_back else "what needs it is refused"
            out.append((name, False, f"{err}; {then} until it is fixed"))
        else:
            out.append((name, True, f"{name}={'none' if value is None else value}"))
    return out


_logged = threading.Event()


def log_environment(environ: Mapping[str, str] | None = None, *, force: bool = False) -> list[str]:
    """Check every ``CNFVIZ_*`` variable and log each (errors as errors); once per process unless ``force``.

    Returns the lines logged (empty when already done)."""
    if _logged.is_set() and not force:
        return []
    _logged.set()
    if not _log.handlers and not logging.getLogger().handlers:
        # A bare server has no logging set up, and Python's last resort shows warnings only: an operator
        # reads the values too.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("cnfviz: %(message)s"))
        _log.addHandler(handler)
        _log.setLevel(logging.INFO)
    lines = []
    for _, usable, line in environment_report(environ):
        (_log.info if usable else _log.error)("%s", line)
        lines.append(line)
    return lines


def markdown_table() -> str:
    """The README's table of variables, from :data:`VARIABLES`."""
    rows = ["| variable | meaning | accepts | default |", "|---|---|---|---|"]
    for var in VARIABLES.values():
        rows.append(f"| `{var.name}` | {var.help} | {var.allowed()} | {_default_text(var)} |")
    return "\n".join(rows)
