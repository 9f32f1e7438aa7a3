"""Save and load trained flows: the state_dict plus the config, loaded with ``weights_only=True``.

A checkpoint of a run may also carry its training state (``training``: the Adam moments, the iteration
count, the random streams and the loss history, as :meth:`cnfviz.TrainingJob.training_state` gives them), so
that a loaded run trains on exactly as the saved one would have. It is optional: a file without it (any file
an older cnfviz wrote) still loads, and continues with a fresh optimizer; an older cnfviz reads a file with it
as weights only.

Loading never unpickles anything but tensors and plain containers, and every way a file can be wrong
(too large, not a checkpoint, cut short, carrying code, a config that does not validate or does not fit
the weights, NaN weights, another network than the one expected) raises a :class:`ConfigError` that says
what is wrong and what a checkpoint has to be.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import fields
from typing import IO, Any

import numpy as np
import torch

from .._validation import ConfigError, check_int_range
from ..flow.config import ModelConfig
from ..flow.ffjord import FFJORD
from ..targets import SCIPY_PREFIX, TARGETS
from .config import TrainConfig
from .trainer import load_weights, problems_text, weight_problems

__all__ = [
    "FORMAT",
    "MAX_BYTES",
    "MAX_ENTRIES",
    "MAX_PICKLE_BYTES",
    "checkpoint_bytes",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "cnfviz-checkpoint-v1"
MAX_BYTES = 50_000_000
"""The largest checkpoint :func:`load_checkpoint` reads by default (50 MB: a 1024-wide, 8-deep network
in float32 is about 34 MB)."""

MAX_ENTRIES = 10_000
"""The most files a checkpoint's archive may hold (one per tensor, plus five): a real one has a few dozen."""
MAX_PICKLE_BYTES = 1_000_000
"""The largest pickled structure a checkpoint may hold (a real one's is a few kB: the config and the names
of its tensors). Unpickling builds Python objects far larger than the bytes that describe them."""

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
_EOCD = b"PK\x05\x06"  # a zip's end-of-central-directory record
_EOCD64 = b"PK\x06\x06"
_WHAT = "a cnfviz checkpoint (.pt) as the app's Download button or `cnfviz train --save` writes it"
# Pickle opcodes that import or call something: a file that holds only weights needs none of them.
_CODE_OPCODES = frozenset(
    {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE", "BUILD", "EXT1", "EXT2", "EXT4"}
)


def _payload(
    model: FFJORD,
    config: TrainConfig,
    extra: dict[str, Any] | None,
    target_data: np.ndarray | None,
    training: Mapping[str, Any] | None = None,
) -> dict:
    payload: dict[str, Any] = {
        "format": FORMAT,
        "dim": model.dim,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    if target_data is not None:
        # Custom targets (samples, images) have no name to rebuild them from, so their data travels along.
        payload["target_data"] = torch.from_numpy(np.array(target_data, dtype=np.float64))  # a writable copy
    if training is not None:
        payload["training"] = dict(training)
    return payload


def save_checkpoint(
    path: str | os.PathLike | IO[bytes],
    model: FFJORD,
    config: TrainConfig,
    *,
    extra: dict[str, Any] | None = None,
    target_data: np.ndarray | None = None,
    training: Mapping[str, Any] | None = None,
) -> None:
    """Write ``model`` and the ``config`` it was trained with. ``extra`` holds JSON-like metadata (metrics);
    ``target_data``, samples of shape (n, d), lets a custom target be rebuilt when the file is loaded;
    ``training``, a run's :meth:`~cnfviz.TrainingJob.training_state`, lets a loaded run train on where it was."""
    torch.save(_payload(model, config, extra, target_data, training), path)


def checkpoint_bytes(model: FFJORD, config: TrainConfig, **kwargs: Any) -> bytes:
    """The checkpoint as bytes, e.g. for a download button."""
    buf = io.BytesIO()
    save_checkpoint(buf, model, config, **kwargs)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _size_text(n: int) -> str:
    return f"{n:,} bytes ({n / 1e6:.3g} MB)"


def _read(source: str | os.PathLike | IO[bytes] | bytes, max_bytes: int) -> bytes:
    """The file's bytes, refusing more than ``max_bytes`` before reading them all."""
    too_big = f"the checkpoint is larger than the limit of {_size_text(max_bytes)}"
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            size = os.path.getsize(path)
            if size > max_bytes:
                raise ConfigError(f"{too_big} ({path} has {_size_text(size)})", field="checkpoint")
            with open(path, "rb") as fh:
                raw = fh.read(max_bytes + 1)
        except FileNotFoundError:
            raise ConfigError(f"checkpoint not found: {path}", field="checkpoint") from None
        except OSError as err:
            raise ConfigError(f"cannot read checkpoint {path}: {err.strerror or err}", field="checkpoint") from None
    elif hasattr(source, "read"):
        raw = source.read(max_bytes + 1)
        if not isinstance(raw, bytes):
            raise ConfigError(
                f"a checkpoint is binary: open the file in binary mode (got {type(raw).__name__})",
                field="checkpoint",
            )
    else:
        raise ConfigError(
            f"a checkpoint comes as a path, bytes or a binary file (got {type(source).__name__})",
            field="checkpoint",
        )
    if len(raw) > max_bytes:
        raise ConfigError(too_big, field="checkpoint")
    if not raw:
        raise ConfigError(f"the checkpoint file is empty: expected {_WHAT}", field="checkpoint")
    return raw


def _pickled_code(raw: bytes) -> list[str] | None:
    """For a bare pickle: the names it would import or call (empty if none); None if it is no pickle.

    Only parses the opcodes (``pickletools`` executes nothing)."""
    names: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(raw):
            if isinstance(arg, str) and "UNICODE" in op.name:
                strings = [*strings[-1:], arg]
            if op.name == "GLOBAL" and isinstance(arg, str):
                names.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL":
                names.append(".".join(strings) if len(strings) == 2 else "an imported object")
            elif op.name in _CODE_OPCODES and not names:
                names.append(f"the {op.name} instruction")
    except (ValueError, KeyError, IndexError, TypeError, EOFError):
        return names or None
    return names


def _looks_like_text(raw: bytes) -> bool:
    try:
        head = raw[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in head)


def _refused(names: list[str]) -> ConfigError:
    shown = ", ".join(dict.fromkeys(names[:3]))
    return ConfigError(
        f"refused to load the checkpoint: it contains code or Python objects other than tensors ({shown}). "
        "A cnfviz checkpoint holds only weights, numbers and text, and cnfviz never runs code from a file",
        field="checkpoint",
    )


def _not_a_zip(raw: bytes) -> ConfigError:
    """Why bytes that are not a torch.save archive cannot be a checkpoint (a pickle with code is refused)."""
    if raw[:1] == b"\x80":  # a pickle's protocol marker
        names = _pickled_code(raw)
        if names:
            return _refused(names)
    kind = "a text file" if _looks_like_text(raw) else "unrecognised binary data"
    return ConfigError(f"not a readable cnfviz checkpoint: the file is {kind}; expected {_WHAT}", field="checkpoint")


def _cut_short(raw: bytes) -> ConfigError:
    return ConfigError(
        f"the checkpoint is cut short or damaged ({len(raw):,} bytes, and the archive's index is missing): "
        "download or copy it again",
        field="checkpoint",
    )


def _entry_count(raw: bytes) -> int | None:
    """How many files the archive's index declares, read from its last record without parsing the index."""
    end = raw.rfind(_EOCD, max(0, len(raw) - 65_557))  # the record is 22 bytes plus a comment of < 64 kB
    if end < 0 or end + 22 > len(raw):
        return None
    count = struct.unpack_from("<H", raw, end + 10)[0]
    if count == 0xFFFF:  # zip64: the real count is in the zip64 record
        end64 = raw.rfind(_EOCD64, 0, end)
        if end64 < 0 or end64 + 40 > len(raw):
            return None
        count = struct.unpack_from("<Q", raw, end64 + 32)[0]
    return count


def _check_archive(raw: bytes, max_tensor_bytes: int) -> None:
    """Refuse an archive that would inflate past the budget, from what its index declares, before torch reads
    a byte of it: too many files, a pickle too large to unpickle safely, or more tensor bytes than allowed.

    torch.save stores its files uncompressed, but torch.load also inflates deflated ones, so a small upload
    could otherwise expand to gigabytes; torch allocates each file at its declared size, which bounds it."""
    count = _entry_count(raw)
    if count is None:
        raise _cut_short(raw)
    if count > MAX_ENTRIES:
        raise ConfigError(
            f"refused to load the checkpoint: its archive declares {count:,} files; a checkpoint has one per "
            f"tensor and the limit is {MAX_ENTRIES:,}",
            field="checkpoint",
            allowed=f"at most {MAX_ENTRIES:,} files",
        )
    try:
        entries = zipfile.ZipFile(io.BytesIO(raw)).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, struct.error):
        raise _cut_short(raw) from None
    declared = sum(e.file_size for e in entries)
    pickled = sum(e.file_size for e in entries if e.filename.endswith(".pkl"))
    limit = f"the limit is {_size_text(max_tensor_bytes)}"
    if declared > max_tensor_bytes:
        raise ConfigError(
            f"refused to load the checkpoint: it would expand to {_size_text(declared)} when read "
            f"(from {_size_text(len(raw))} on disk); {limit}",
            field="checkpoint",
            allowed=limit,
        )
    if pickled > MAX_PICKLE_BYTES:
        raise ConfigError(
            f"refused to load the checkpoint: its pickled structure is {_size_text(pickled)}; a cnfviz checkpoint's "
            f"is a few kB and the limit is {_size_text(MAX_PICKLE_BYTES)}",
            field="checkpoint",
            allowed=f"at most {_size_text(MAX_PICKLE_BYTES)}",
        )


def _unpickle(raw: bytes, max_tensor_bytes: int = MAX_BYTES) -> Any:
    """``torch.load(weights_only=True)`` on a torch.save archive, with each failure said plainly."""
    if raw[:4] != _ZIP_MAGIC:
        raise _not_a_zip(raw)
    _check_archive(raw, max_tensor_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's advice to pass weights_only=False: never taken here
            return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        found = re.findall(r"GLOBAL ([\w.]+)", text)
        if found or "Unsupported" in text or "not an allowed global" in text:
            raise _refused(found or ["an object torch's safe loader does not allow"]) from None
        raise ConfigError(
            f"not a readable cnfviz checkpoint: its contents are damaged; expected {_WHAT}",
            field="checkpoint",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        text = str(err)
        if isinstance(err, EOFError) or "central directory" in text or "truncated" in text.lower():
            raise _cut_short(raw) from None
        if "PytorchStreamReader" in text or "zip" in text.lower():
            raise ConfigError(
                f"not a readable cnfviz checkpoint: a zip archive, but not one torch.save wrote; expected {_WHAT}",
                field="checkpoint",
            ) from None
        first = text.strip().splitlines()[0][:200] if text.strip() else type(err).__name__
        raise ConfigError(f"not a readable cnfviz checkpoint ({first})", field="checkpoint") from None


def _target_dim(config: TrainConfig, target_data: np.ndarray | None = None) -> int | None:
    """The dimension the config's target has, where the name (or the data) tells; None when unknown."""
    if config.target in TARGETS:
        return TARGETS[config.target].dim
    if config.target.startswith(SCIPY_PREFIX):
        return 1
    if config.target == "image":
        return 2
    if target_data is not None:
        return int(target_data.shape[1])
    return None


def _show(value: Any) -> str:
    return repr(tuple(value)) if isinstance(value, (list, tuple)) else repr(value)


def _architecture_differences(dim: int, model: ModelConfig, expect_dim: int | None, expect: ModelConfig) -> list[str]:
    out = [f"dim is {dim} (expected {expect_dim})"] if expect_dim is not None and dim != expect_dim else []
    for f in fields(ModelConfig):
        got, want = getattr(model, f.name), getattr(expect, f.name)
        if got != want:
            out.append(f"model.{f.name} is {_show(got)} (expected {_show(want)})")
    return out


def _config(raw: Any) -> TrainConfig:
    try:
        return TrainConfig.from_dict(raw)
    except ConfigError as err:
        raise ConfigError(
            f"checkpoint config: {err}",
            field=err.field or "checkpoint.config",
            allowed=err.allowed,
        ) from None
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise ConfigError(
            f"checkpoint config: not a valid config ({type(err).__name__}: {err})",
            field="checkpoint.config",
        ) from None


def _state_dict(raw: Any) -> dict[str, torch.Tensor]:
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in raw.items()):
        raise ConfigError("checkpoint state_dict must map parameter names to tensors", field="checkpoint.state_dict")
    for name, value in raw.items():
        if not value.is_floating_point():
            raise ConfigError(
                f"checkpoint weights must be floating-point tensors "
                f"({name} is {str(value.dtype).removeprefix('torch.')})",
                field=f"state_dict.{name}",
                allowed="float32 or float64 tensors",
            )
        if not bool(torch.isfinite(value).all()):
            raise ConfigError(
                f"checkpoint weights hold NaN or infinite values ({name}): the run it was saved from had diverged",
                field=f"state_dict.{name}",
            )
    return raw


def _target_data(raw: Any, dim: int) -> np.ndarray:
    if not isinstance(raw, torch.Tensor) or raw.ndim != 2 or raw.shape[1] != dim or not raw.is_floating_point():
        shape = tuple(raw.shape) if isinstance(raw, torch.Tensor) else type(raw).__name__
        raise ConfigError(
            f"checkpoint target_data must be samples of shape (n, {dim}) (got {shape})",
            field="checkpoint.target_data",
        )
    data = raw.double().numpy()
    if not np.all(np.isfinite(data)):
        raise ConfigError("checkpoint target_data holds NaN or infinite values", field="checkpoint.target_data")
    return data


_TRAINER_KEYS = {
    "iteration": int,
    "adam_done": int,
    "adam_iters": int,
    "train_seconds": float,
    "lbfgs_evals": int,
    "lbfgs_finished": bool,
    "perm_pos": int,
    "data_rng": str,
}
_HISTORY = {
    "iteration": ("iteration", True),
    "loss": ("iteration", False),
    "nll": ("iteration", False),
    "nfe": ("iteration", True),
    "nfe_iter": ("iteration", True),
    "elapsed": ("iteration", False),
    "test_iteration": ("test_iteration", True),
    "test_nll": ("test_iteration", False),
}  # each key of a run's history: the key whose length it shares, and whether it counts (integers)


def _damaged(why: str) -> ConfigError:
    return ConfigError(
        f"the checkpoint's training state is damaged ({why}); its weights alone load from a copy saved "
        "without it, or download the checkpoint again",
        field="checkpoint.training",
    )


def _training(raw: Any, model: FFJORD) -> dict[str, Any]:
    """Check a checkpoint's training state against its network, so that Continue cannot fail on it later."""
    if not isinstance(raw, dict) or not isinstance(raw.get("trainer"), dict):
        raise _damaged("it is not a mapping with a trainer")
    tr = raw["trainer"]
    for key, kind in _TRAINER_KEYS.items():
        value = tr.get(key)
        ok = isinstance(value, kind) if kind is not int else isinstance(value, int) and not isinstance(value, bool)
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (kind is int and value < 0):
            raise _damaged(f"trainer.{key} is {value!r}")
    if tr["adam_done"] > tr["adam_iters"] or tr["adam_done"] > tr["iteration"]:
        raise _damaged(f"{tr['adam_done']} Adam iterations done of {tr['adam_iters']}, {tr['iteration']} in all")
    nfe = tr.get("nfe")
    if not (isinstance(nfe, list) and len(nfe) == 2 and all(isinstance(n, int) and n >= 0 for n in nfe)):
        raise _damaged(f"trainer.nfe is {nfe!r}")
    step = tr.get("step_size")
    if step is not None and not (isinstance(step, float) and math.isfinite(step) and step > 0):
        raise _damaged(f"trainer.step_size is {step!r}")
    notes = tr.get("notes")
    if not (isinstance(notes, list) and all(isinstance(n, str) for n in notes)):
        raise _damaged("trainer.notes is not a list of text")
    try:
        np.random.default_rng().bit_generator.state = json.loads(tr["data_rng"])
    except (ValueError, TypeError, KeyError) as err:
        raise _damaged(f"trainer.data_rng: {err}") from None
    noise = tr.get("noise")
    if not (isinstance(noise, torch.Tensor) and noise.dtype == torch.uint8 and noise.ndim == 1):
        raise _damaged("trainer.noise is not a random generator's state")
    try:
        torch.Generator().set_state(noise)
    except RuntimeError as err:
        raise _damaged(f"trainer.noise: {err}") from None
    perm = tr.get("perm")
    if perm is not None and not (isinstance(perm, torch.Tensor) and perm.dtype == torch.int64 and perm.ndim == 1):
        raise _damaged("trainer.perm is not a permutation")
    if tr.get("optimizer") is not None:
        _check_optimizer(tr["optimizer"], model)
    rounds = raw.get("round_iters")
    if not (isinstance(rounds, int) and not isinstance(rounds, bool) and rounds >= 0):
        raise _damaged(f"round_iters is {rounds!r}")
    history = raw.get("history")
    if not isinstance(history, dict) or set(history) != set(_HISTORY):
        raise _damaged(f"the history must have the keys {sorted(_HISTORY)}")
    for key, (length, counts) in _HISTORY.items():
        value = history[key]
        if not isinstance(value, torch.Tensor) or value.ndim != 1 or value.is_floating_point() == counts:
            raise _damaged(f"history.{key} is not a 1D tensor of {'integers' if counts else 'numbers'}")
        if len(value) != len(history[length]):
            raise _damaged(f"history.{key} has {len(value)} rows where history.{length} has {len(history[length])}")
    return raw


def _check_optimizer(raw: Any, model: FFJORD) -> None:
    """An Adam state_dict whose moments fit ``model``'s parameters, one by one, finite."""
    params = list(model.parameters())
    state = raw.get("state") if isinstance(raw, dict) else None
    groups = raw.get("param_groups") if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not isinstance(groups, list) or len(groups) != 1:
        raise _damaged("the optimizer state is not Adam's")
    for index, moments in state.items():
        if not (isinstance(index, int) and 0 <= index < len(params) and isinstance(moments, dict)):
            raise _damaged(f"the optimizer state names parameter {index!r} of {len(params)}")
        for name in ("exp_avg", "exp_avg_sq"):
            m = moments.get(name)
            if not isinstance(m, torch.Tensor) or tuple(m.shape) != tuple(params[index].shape):
                raise _damaged(f"the optimizer's {name} of parameter {index} does not fit the network")
            if not bool(torch.isfinite(m).all()):
                raise _damaged(f"the optimizer's {name} of parameter {index} holds NaN or infinite values")
    try:
        torch.optim.Adam(params, lr=1e-3).load_state_dict(raw)
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise _damaged(f"the optimizer state: {err}") from None


def load_checkpoint(
    path: str | os.PathLike | IO[bytes] | bytes,
    *,
    device: str | torch.device = "cpu",
    max_bytes: int = MAX_BYTES,
    max_tensor_bytes: int | None = None,
    expect: TrainConfig | None = None,
) -> tuple[FFJORD, TrainConfig, dict[str, Any]]:
    """Load a checkpoint without unpickling arbitrary objects.

    Arguments:
        path: a path, the file's bytes, or a binary file object (e.g. an upload).
        device: where the model goes.
        max_bytes: refuse larger files, before reading them.
        max_tensor_bytes: refuse an archive whose files would expand to more than this when read, checked
            from its index before anything is inflated (default: ``max_bytes``).
        expect: when given, refuse a checkpoint whose network (dim and model config) differs from this
            config's, naming each field that differs.

    Returns:
        ``(model, config, info)`` where info has ``extra``, for custom targets ``target_data`` (samples,
        shape (n, d)), and for a checkpoint that carries its training state ``training`` (checked; pass it
        as ``resume`` to :class:`~cnfviz.TrainingJob` to train on where the saved run was).

    Raises:
        ConfigError: when the file is missing, too large, not a cnfviz checkpoint, cut short, carrying
            code, or inconsistent (config, dim, weights), or not the expected network.

    Example:
        >>> try:
        ...     load_checkpoint(b"hello")
        ... except ConfigError as err:
        ...     print(str(err).split(";")[0])
        not a readable cnfviz checkpoint: the file is a text file
    """
    max_bytes = check_int_range(max_bytes, "max_bytes", lo=1)
    max_tensor_bytes = check_int_range(
        max_bytes if max_tensor_bytes is None else max_tensor_bytes, "max_tensor_bytes", lo=1
    )
    payload = _unpickle(_read(path, max_bytes), max_tensor_bytes)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else None
        newer = re.fullmatch(r"cnfviz-checkpoint-v(\d{1,6})", found) if isinstance(found, str) else None
        if newer and int(newer.group(1)) > int(FORMAT.rsplit("v", 1)[1]):  # a cnfviz checkpoint, from the future
            raise ConfigError(
                f"this checkpoint was made by a newer cnfviz (format {newer.group(1)}); this one reads format "
                f"{FORMAT.rsplit('v', 1)[1]}: upgrade cnfviz to load it",
                field="checkpoint",
            )
        seen = f", got {found!r}" if found is not None else ", e.g. a bare state_dict"
        raise ConfigError(
            f"not a cnfviz checkpoint: a torch file, but not in cnfviz's format (expected format {FORMAT!r}{seen})",
            field="checkpoint",
        )
    missing = [k for k in ("dim", "config", "state_dict") if k not in payload]
    if missing:
        raise ConfigError(
            f"checkpoint is missing {missing}: a cnfviz checkpoint has a dim, a config and a state_dict",
            field="checkpoint",
        )
    config = _config(payload["config"])
    raw_dim = payload["dim"]
    if isinstance(raw_dim, torch.Tensor) and raw_dim.numel() == 1:
        raw_dim = raw_dim.item()
    dim = check_int_range(raw_dim, "checkpoint dim", lo=1, hi=64)
    target_data = _target_data(payload["target_data"], dim) if "target_data" in payload else None
    want = _target_dim(config, target_data)
    if want is not None and want != dim:
        raise ConfigError(f"checkpoint dim is {dim}, but its target {config.target} is {want}D", field="checkpoint.dim")
    state = _state_dict(payload["state_dict"])
    if expect is not None:
        diffs = _architecture_differences(dim, config.model, _target_dim(expect), expect.model)
        if diffs:
            raise ConfigError(
                "the checkpoint's network differs from the expected one: " + "; ".join(diffs),
                field="checkpoint.model",
            )
    model = FFJORD(dim, config.model, config.solver)
    problems = weight_problems(model, state)
    if problems:
        raise ConfigError(
            f"checkpoint weights do not match its config (dim {dim}, model.hidden {_show(config.model.hidden)}): "
            f"{problems_text(problems)}",
            field="checkpoint.state_dict",
        )
    load_weights(model, state)
    model.to(device).eval()
    extra = payload.get("extra")
    info: dict[str, Any] = {"extra": extra if isinstance(extra, dict) else {}}
    if target_data is not None:
        info["target_data"] = target_data
    if payload.get("training") is not None:
        info["training"] = _training(payload["training"], model)
    return model, config, info
