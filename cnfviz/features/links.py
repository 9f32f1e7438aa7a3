"""Shareable links: a TrainConfig as readable URL query parameters, and back.

A teacher can write a link by hand, e.g. ``?target=moons&hidden=16,16&hide=solver,trace&autostart=1``:
every key is optional and falls back to the defaults for the target (or the named ``preset``).
Parsing never raises. A bad value is dropped, the default is kept, and a notice says what was
wrong, so garbage in a link shows a message instead of crashing the page. A notice quotes at most
:data:`SHOWN_CHARS` characters of a value, a value over :data:`MAX_VALUE_CHARS` is not parsed at all, and
a link gets at most :data:`MAX_NOTICES` notices. Notices are plain text: show them escaped.

Keys (all optional):

=========  ==========================================  ===========================
key        meaning                                      example
=========  ==========================================  ===========================
preset     start from a preset instead of the defaults  ``seed``
target     target name                                  ``moons``, ``scipy:gamma``
p.<name>   a target parameter                           ``p.a=2``, ``p.means=-2,2``
hidden     hidden widths                                ``64,64``
act        activation                                   ``silu``
time       time conditioning                            ``concat``
linear     linear term fitted to the data (0/1)         ``1``
final      activation on the output layer (0/1)         ``0``
tspan      t0,t1                                        ``0,10``
trace      divergence estimator                         ``hutchinson-rademacher``
solver     ODE method                                   ``dopri5``
rtol/atol  tolerances                                   ``1e-5``
step       fixed-grid step size                         ``0.25``
adjoint    adjoint backprop (0/1)                       ``1``
adam       Adam iterations                              ``500``
lr         learning rate                                ``0.01``
decay      cosine learning-rate decay (0/1)             ``1``
lbfgs      LBFGS iterations                             ``20``
batch      batch size (``full`` for full batch)         ``256``
ntrain     fixed training-set size (``fresh`` for none) ``100``
lk/lj      regularizer weights λ₁ / λ₂                  ``0.1``
seed       random seed                                  ``3``
budget     training time budget in seconds              ``30``
maxsteps   adaptive solver step limit                   ``2000``
maxnfe     dynamics evaluations per solve (``none``:    ``5000``
           no cap)
lrmin      final learning rate as a fraction of lr      ``0.05``
eval       test NLL every k iterations (0 = off)        ``100``
ntest      held-out samples for the test NLL            ``2000``
clip       gradient-norm clip (``none`` for off)        ``10``
device     ``auto``, ``cpu``, ``cuda`` or ``mps``       ``cpu``
objective  ``likelihood`` (a link without it),           ``flow-matching``
           ``flow-matching``, ``ot-flow-matching``
hide       controls to hide                             ``solver,trace``
autostart  start training on open (0/1)                 ``1``
data       ``own``: made on the author's own data        ``own``
=========  ==========================================  ===========================

A link cannot carry an upload or a drawing: the Train page's address then reads ``?data=own``
(:data:`OWN_DATA`), and opening it says so instead of showing another target's settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .._validation import ConfigError
from ..targets import SCIPY_PREFIX, SLOW_SCIPY, make_target, scipy_params
from ..targets.base import MAX_LIST_ITEMS
from ..training.config import TrainConfig
from ..training.fields import PLAIN_KINDS, Field, config_fields, number_text
from ..training.presets import DEFAULT_TARGET, PRESETS, default_config

__all__ = [
    "CONTROLS",
    "MAX_NOTICES",
    "MAX_VALUE_CHARS",
    "OWN_DATA",
    "SHOWN_CHARS",
    "LinkState",
    "config_to_query",
    "parse_query",
]

OWN_DATA = {"data": "own"}
"""The query of a setup on the user's own data (an upload or a drawing), which no link can carry."""

MAX_VALUE_CHARS = 1_000
"""A longer value in a link is ignored unread: the longest a link writes is a list of
:data:`~cnfviz.targets.base.MAX_LIST_ITEMS` numbers at full precision (25 characters and a comma each)."""
assert MAX_LIST_ITEMS * 26 <= MAX_VALUE_CHARS, "every link the app writes, it reads back"
SHOWN_CHARS = 60
"""How much of a bad value a notice quotes."""
MAX_NOTICES = 8

# The Train page's control names: what ``hide=`` may list and the sidebar can hide.
CONTROLS: tuple[str, ...] = (
    "presets",
    "target",
    "width",
    "depth",
    "activation",
    "time",
    "linear",
    "tspan",
    "solver",
    "tolerances",
    "trace",
    "adjoint",
    "adam_iters",
    "lr",
    "lbfgs_iters",
    "batch",
    "lambdas",
    "seed",
    "device",
    "objective",
    "advanced",
)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 0 or 1, got {text!r}")


def _short(text: str) -> str:
    """A value as a notice quotes it: cut to :data:`SHOWN_CHARS` characters, saying how long it was."""
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}… ({len(text):,} characters)"


def _reason(err: Exception, raw: str) -> str:
    """An error's message, with a long value it quotes cut as :func:`_short` cuts it."""
    return str(err).replace(raw, _short(raw)) if len(raw) > SHOWN_CHARS else str(err)


# Every setting's link key, parser and formatter come from the one field table.
_FIELDS: dict[str, Field] = {f.key: f for f in config_fields(kinds=PLAIN_KINDS)}


@dataclass(frozen=True)
class LinkState:
    """What a link asks for: the config, controls to hide, whether to start at once, and notices."""

    config: TrainConfig
    hidden: frozenset[str] = frozenset()
    autostart: bool = False
    notices: tuple[str, ...] = field(default_factory=tuple)


def config_to_query(
    config: TrainConfig, *, hidden: frozenset[str] | set[str] = frozenset(), autostart: bool = False
) -> dict[str, str]:
    """The query parameters that rebuild ``config`` exactly: the target, then every field that
    differs from that target's defaults.

    Example:
        >>> config_to_query(default_config("moons", lr=0.02))
        {'target': 'moons', 'lr': '0.02'}
    """
    base = default_config(config.target)
    query: dict[str, str] = {"target": config.target}
    for name, value in config.target_params.items():
        if isinstance(value, (list, tuple)):
            query[f"p.{name}"] = ",".join(number_text(v) if isinstance(v, (int, float)) else str(v) for v in value)
        else:
            query[f"p.{name}"] = number_text(value) if isinstance(value, (int, float)) else str(value)
    for key, f in _FIELDS.items():
        value = f.get(config)
        if value != f.get(base):
            query[key] = f.format(value)
    if hidden:
        query["hide"] = ",".join(sorted(hidden))
    if autostart:
        query["autostart"] = "1"
    return query


def parse_query(query: Mapping[str, str | list[str]]) -> LinkState:
    """Rebuild the state a link describes; never raises.

    Unknown keys and bad values are reported in ``notices`` and ignored; a config that fails
    validation as a whole falls back to the target's (or the preset's) defaults.
    """
    notices: list[str] = []
    q: dict[str, str] = {}
    for key, value in query.items():
        text = str((value[-1] if value else "") if isinstance(value, list) else value)
        if len(text) > MAX_VALUE_CHARS:
            notices.append(
                f'Ignored "{_short(key)}" in the link: its value is {len(text):,} characters long; '
                f"the limit is {MAX_VALUE_CHARS:,}."
            )
        else:
            q[key] = text

    if q.get("data") == OWN_DATA["data"]:
        notices.append(
            "This link was made on someone's own data (an upload or a drawing), which a link cannot carry; "
            "the page shows the default target instead."
        )
    base = default_config(DEFAULT_TARGET)
    preset = q.get("preset")
    if preset is not None:
        if preset in PRESETS:
            base = PRESETS[preset].config
        else:
            notices.append(f'Unknown preset "{_short(preset)}" in the link; valid presets: {sorted(PRESETS)}.')
    target = q.get("target")
    if target is not None and target != base.target:
        try:
            if target.startswith(SCIPY_PREFIX):
                scipy_params(target[len(SCIPY_PREFIX) :])  # a discrete or unknown scipy name says so here
                if target[len(SCIPY_PREFIX) :] in SLOW_SCIPY:
                    raise ConfigError(
                        f"{target} takes seconds to minutes to build or sample, so the target picker leaves it out "
                        "and links cannot ask for it either",
                        field="target",
                    )
            elif target in ("samples", "image"):
                raise ConfigError(f"{target} is the picker's upload choice: a link cannot carry data", field="target")
            base = default_config(target)
        except ConfigError as err:
            notices.append(f"Ignored target in the link: {_reason(err, target)}.")
    given = {k[2:]: v for k, v in q.items() if k.startswith("p.")}
    if given:
        try:
            built = make_target(base.target, {**base.target_params, **given})
            # Keep only what the link gave, as validated, typed values, so the link round-trips.
            typed = {k: built.params[k] for k in given if k in built.params}
            base = base.replace(target_params={**base.target_params, **typed})
        except ConfigError as err:
            notices.append(f"Ignored target parameters in the link: {_reason(err, max(given.values(), key=len))}.")

    config = base
    unknown: list[str] = []
    # The objective goes last: whether it fits depends on the other settings (no LBFGS, a time input...).
    for key, raw in sorted(q.items(), key=lambda item: item[0] == "objective"):
        if key in ("preset", "target", "hide", "autostart", "data") or key.startswith("p."):
            continue
        if key not in _FIELDS:
            unknown.append(f'"{_short(key)}"')
            continue
        f = _FIELDS[key]
        try:
            config = config.replace(**f.change(f.parse(raw)))
        except (ValueError, ConfigError) as err:
            notices.append(f'Ignored "{key}={_short(raw)}" in the link: {_reason(err, raw)}.')

    if unknown:
        names = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else "")
        which = f"setting {names} in the link was" if len(unknown) == 1 else f"settings {names} in the link were"
        valid = ", ".join(["preset", "target", "p.<name>", *sorted(_FIELDS), "hide", "autostart"])
        notices.append(f"Unknown {which} ignored; a link's settings are {valid}.")

    hidden: set[str] = set()
    for name in filter(None, (q.get("hide") or "").split(",")):
        if name in CONTROLS:
            hidden.add(name)
        else:
            notices.append(f'Cannot hide unknown control "{_short(name)}"; controls: {list(CONTROLS)}.')
    autostart = False
    if "autostart" in q:
        try:
            autostart = _bool(q["autostart"])
        except ValueError as err:
            notices.append(f"Ignored autostart in the link: {err}.")
    if len(notices) > MAX_NOTICES:
        rest = len(notices) - (MAX_NOTICES - 1)
        notices = [*notices[: MAX_NOTICES - 1], f"…and {rest:,} more problems in the link."]
    return LinkState(config, frozenset(hidden), autostart, tuple(notices))
