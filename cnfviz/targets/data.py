"""Targets made from the user's own data: samples (a CSV, a drawing) or a picture, with their parsers."""

from __future__ import annotations

import csv
import io
import math
import os
import re
import warnings
from collections.abc import Sequence
from typing import IO, Any

import numpy as np
import scipy.special
import scipy.stats

from .._validation import ConfigError, check_int_range, check_range
from .base import Target, _plain_int, _split_floats

__all__ = [
    "IMAGE_FORMATS",
    "MAX_IMAGE_PIXELS",
    "MAX_TARGET_PIXELS",
    "ImageTarget",
    "SamplesTarget",
    "image_from_file",
    "samples_from_csv",
]

_MIN_SAMPLES = 10
_MIN_RELATIVE_SPREAD = 1e-5  # a column's standard deviation, relative to its largest |value|


class SamplesTarget(Target):
    """The distribution of a given set of points: resampling for samples, a Gaussian KDE for the density.

    Arguments:
        samples: points, shape (n, d) with d in {1, 2}, or (n,) for 1D; n >= 10, all finite.
        name: a name for the data set, shown in the label.
        max_kde_points: the KDE uses at most this many points (a fixed random subset), because evaluating a
            KDE costs (points x queries) and a 200^2 grid against 10^5 points would take minutes.

    Example:
        >>> t = SamplesTarget(np.arange(20.0))
        >>> t.dim, t.density_kind, t.sample(3, seed=1).shape
        (1, 'estimate', (3, 1))
    """

    def __init__(self, samples: np.ndarray | Sequence[Any], name: str = "samples", max_kde_points: int = 2000) -> None:
        try:
            data = np.array(samples, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError("samples must be a numeric array of shape (n, 1) or (n, 2)") from None
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[1] not in (1, 2):
            raise ConfigError(f"samples must have shape (n,), (n, 1) or (n, 2) (got {data.shape})")
        n, d = data.shape
        if n < _MIN_SAMPLES:
            raise ConfigError(f"samples: need at least {_MIN_SAMPLES} points (got {n})")
        if not np.all(np.isfinite(data)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(data), axis=1))[0])
            raise ConfigError(f"samples must be finite (row {bad} is {data[bad].tolist()})")
        # Relative to the data's magnitude: a constant column has a variance of ~1e-32, not 0.
        spread = data.std(axis=0)
        scale = np.maximum(np.abs(data).max(axis=0), 1.0)
        if np.any(spread <= 1e-9 * scale):
            raise ConfigError("samples are degenerate (zero spread); a density cannot be estimated")
        # The trainer works in float32 (steps of x × 1.2e-7): 1e6 ± 0.01 is a few float32 values wide there,
        # and would train to garbage without a word. Said with the fix (centre the column) instead.
        narrow = spread < _MIN_RELATIVE_SPREAD * scale
        if np.any(narrow):
            c = int(np.argmax(narrow))
            raise ConfigError(
                f"samples: column {c + 1} spreads {spread[c]:.3g} around {data[:, c].mean():.6g}, finer than float32 "
                "(the trainer's precision) resolves so far from 0; subtract the mean (or a round number near it) "
                "from that column first",
                field="samples",
                allowed=f"a spread of at least {_MIN_RELATIVE_SPREAD:g} × the largest |value|",
            )
        max_kde_points = check_int_range(_plain_int(max_kde_points), "max_kde_points", lo=_MIN_SAMPLES)
        kde_data = data
        if n > max_kde_points:
            kde_data = data[np.random.default_rng(0).choice(n, max_kde_points, replace=False)]
        try:
            kde = scipy.stats.gaussian_kde(kde_data.T)
            bw = np.sqrt(np.diag(kde.covariance))
            np.linalg.cholesky(kde.covariance)
        except (np.linalg.LinAlgError, ValueError):
            raise ConfigError(
                "samples are degenerate (zero spread, or all on a line in 2D); a density cannot be estimated"
            ) from None
        if not np.all(np.isfinite(bw)) or np.any(bw <= 0):
            raise ConfigError("samples are degenerate (zero spread); a density cannot be estimated")
        data.setflags(write=False)
        self.data = data
        self._kde = kde
        span = data.max(axis=0) - data.min(axis=0)
        # Three kernel widths past the extreme points leave a negligible share of the KDE's mass outside.
        margin = np.maximum(0.1 * span, 3 * bw)
        bounds = np.stack([data.min(axis=0) - margin, data.max(axis=0) + margin], axis=1)
        params = {"n": int(n), "dim": int(d)}
        super().__init__(
            name=name, dim=d, params=params, density_kind="estimate", bounds=bounds, label=f"{name} (n={n})"
        )

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.data[rng.integers(self.data.shape[0], size=n)]

    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        # evaluate() is ~3x faster than logpdf(); logpdf only where the density underflows to 0.
        dens = self._kde.evaluate(x.T)
        out = np.log(dens)
        tiny = dens <= 0
        if tiny.any():
            out[tiny] = self._kde.logpdf(x[tiny].T)
        return out

    def _key(self) -> tuple[Any, ...]:
        return (*super()._key(), self.data.shape, hash(self.data.tobytes()))


MAX_TARGET_PIXELS = 2048 * 2048
"""The most pixels an :class:`ImageTarget` holds (32 MB as float64): far above the 256 × 256 the app uses."""


class ImageTarget(Target):
    """A grayscale picture as a piecewise-constant 2D density.

    Each pixel is a rectangle of the ``extent``; row 0 is the TOP of the picture (largest y). With
    ``invert=False`` bright pixels are likely (density proportional to intensity); with ``invert=True`` dark
    pixels are likely (density proportional to 1 - intensity), for dark strokes on white paper.

    Arguments:
        image: intensities, shape (H, W), floats in [0, 1] or uint8 (0..255).
        extent: ``(xmin, xmax, ymin, ymax)`` of the picture, as in matplotlib's ``imshow``.
        invert: use 1 - intensity as the weight.

    Example:
        >>> img = np.zeros((4, 4)); img[0, 0] = 1.0  # top-left pixel only
        >>> x = ImageTarget(img).sample(100, seed=0)
        >>> bool(np.all((x[:, 0] < -2) & (x[:, 1] > 2)))
        True
    """

    def __init__(
        self, image: np.ndarray, extent: Sequence[float] = (-4.0, 4.0, -4.0, 4.0), invert: bool = False
    ) -> None:
        arr = np.asarray(image)
        if arr.ndim != 2 or min(arr.shape) < 1:
            raise ConfigError(f"image must be a 2D grayscale array of shape (H, W) (got shape {arr.shape})")
        if arr.size > MAX_TARGET_PIXELS:  # before the float64 copies below: 8 bytes a pixel, several times
            raise ConfigError(
                f"image has {arr.shape[0]:,} × {arr.shape[1]:,} pixels; a density holds at most "
                f"{MAX_TARGET_PIXELS:,} (image_from_file shrinks a picture to fit)",
                field="image",
                allowed=f"at most {MAX_TARGET_PIXELS:,} pixels",
            )
        if arr.dtype == np.uint8:
            img = arr.astype(np.float64) / 255.0
        else:
            try:
                img = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise ConfigError(f"image must be numeric (got dtype {arr.dtype})") from None
            if not np.all(np.isfinite(img)) or img.min() < 0 or img.max() > 1:
                raise ConfigError("image values must be finite and in [0, 1] (or a uint8 array)")
        ext = _split_floats(list(extent) if not isinstance(extent, str) else extent, "extent")
        if len(ext) != 4:
            raise ConfigError(f"extent must be 4 numbers (xmin, xmax, ymin, ymax) (got {extent!r})")
        xmin, xmax, ymin, ymax = (check_range(v, f"extent[{i}]") for i, v in enumerate(ext))
        if not (xmin < xmax and ymin < ymax):
            raise ConfigError(f"extent must have xmin < xmax and ymin < ymax (got {[xmin, xmax, ymin, ymax]})")
        weights = 1.0 - img if invert else img
        total = weights.sum()
        if not total > 0:
            which = "white (1.0)" if invert else "black (0)"
            raise ConfigError(f"image is all {which}: it has no mass to learn (try invert={not invert})")
        h, w = img.shape
        self._dx, self._dy = (xmax - xmin) / w, (ymax - ymin) / h
        self._extent = (xmin, xmax, ymin, ymax)
        self._prob = (weights / total).ravel()
        with np.errstate(divide="ignore"):
            self._log_density = np.log(weights / (total * self._dx * self._dy))
        img.setflags(write=False)
        self.image = img
        params = {
            "height": int(h),
            "width": int(w),
            "extent": [xmin, xmax, ymin, ymax],
            "invert": bool(invert),
        }
        label = f"image {w}x{h}" + (" (inverted)" if invert else "")
        super().__init__(
            name="image",
            dim=2,
            params=params,
            density_kind="exact",
            bounds=[[xmin, xmax], [ymin, ymax]],
            label=label,
        )

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        h, w = self.image.shape
        xmin, _, _, ymax = self._extent
        row, col = np.divmod(rng.choice(h * w, size=n, p=self._prob), w)
        u = rng.random((n, 2))
        return np.stack([xmin + (col + u[:, 0]) * self._dx, ymax - (row + u[:, 1]) * self._dy], axis=1)

    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        h, w = self.image.shape
        xmin, xmax, ymin, ymax = self._extent
        col = np.floor((x[:, 0] - xmin) / self._dx).astype(np.int64)
        row = np.floor((ymax - x[:, 1]) / self._dy).astype(np.int64)
        # The far edges belong to the last column / bottom row, so the closed extent is all inside.
        col = np.where(x[:, 0] == xmax, w - 1, col)
        row = np.where(x[:, 1] == ymin, h - 1, row)
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        out = np.full(x.shape[0], -np.inf)
        out[inside] = self._log_density[row[inside], col[inside]]
        return out

    def _key(self) -> tuple[Any, ...]:
        return (*super()._key(), self.image.shape, hash(self.image.tobytes()))


def _read_bytes(data: str | bytes | os.PathLike | IO, max_bytes: int, what: str) -> bytes | str:
    """Read raw content from a path, bytes, text or a file object, refusing more than ``max_bytes``."""
    too_big = ConfigError(f"{what} is larger than the limit of {max_bytes:,} bytes ({max_bytes / 1e6:.3g} MB)")
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw: bytes | str = bytes(data)
    elif isinstance(data, str) and not os.path.isfile(data):
        if "\n" not in data and data.strip().lower().endswith((".csv", ".txt", ".tsv", ".dat")):
            raise ConfigError(f"{what} file not found: {data!r}")
        raw = data
    elif isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        try:
            if os.path.getsize(path) > max_bytes:
                raise too_big
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as err:
            raise ConfigError(f"cannot read {what} file {path!r}: {err.strerror or err}") from None
    elif hasattr(data, "read"):
        raw = data.read(max_bytes + 1)
    else:
        raise ConfigError(f"{what}: expected text, bytes, a path or a file object (got {type(data).__name__})")
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > max_bytes:
        raise too_big
    return raw


def _parse_number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _not_a_number(lineno: int, col: int, cell: str) -> ConfigError:
    """The error for a cell that is no number, with a hint for the usual causes (decimal commas, odd
    separators, prose)."""
    shown = cell if len(cell) <= 40 else cell[:40] + "…"
    if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?", cell):
        digits = cell.replace(",", "")
        hint = f"thousands separators are not understood: write {digits}"
        if cell.count(",") == 1 and "." not in cell:
            hint += f", or {cell.replace(',', '.')} if the comma is a decimal point"
    elif re.fullmatch(r"[-+]?\d+,\d+", cell):
        hint = f"decimal commas are not understood: write {cell.replace(',', '.')}"
    elif re.fullmatch(rf"{_NUMBER}\s*[^\w\s.+-]\s*{_NUMBER}", cell):
        hint = "separate the columns with a comma, a semicolon, a tab or spaces"
    else:
        hint = "every cell after an optional header row must be a number such as 1.5, -2 or 3e-4"
    return ConfigError(f"CSV line {lineno}, column {col}: {shown!r} is not a number; {hint}")


def samples_from_csv(
    data: str | bytes | os.PathLike | IO, *, max_rows: int = 100_000, max_bytes: int = 5_000_000
) -> np.ndarray:
    """Parse 1 or 2 numeric columns of samples from CSV-like text.

    The separator is ``;``, ``,``, a tab or whitespace (taken from the first line). A first row with no
    numeric cell is a header and is skipped; blank lines and lines starting with ``#`` are ignored.

    Arguments:
        data: CSV text, bytes, a file object (e.g. an upload), or a path (a ``str`` is a path only when it is
            an existing file).
        max_rows: the most data rows accepted.
        max_bytes: the largest input accepted.

    Returns:
        samples, shape (n, d) with d in {1, 2}, float64, 10 <= n <= max_rows.

    Raises:
        ConfigError: empty input, more than 2 columns, a non-numeric or non-finite cell (with its line and
            column), ragged rows, fewer than 10 rows, or input over the row/byte limits.

    Example:
        >>> samples_from_csv("x,y\\n" + "\\n".join(f"{i},{2 * i}" for i in range(10))).shape
        (10, 2)
    """
    max_rows = check_int_range(_plain_int(max_rows), "max_rows", lo=_MIN_SAMPLES)
    max_bytes = check_int_range(_plain_int(max_bytes), "max_bytes", lo=1)
    raw = _read_bytes(data, max_bytes, "CSV")
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw.lstrip("\ufeff")
    except UnicodeDecodeError:
        raise ConfigError("CSV is not UTF-8 text: expected a text file with 1 or 2 columns of numbers") from None
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines())]
    lines = [(i, ln) for i, ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ConfigError("CSV is empty: expected 1 or 2 numeric columns of samples")
    first = lines[0][1]
    sep = next((s for s in (";", ",", "\t") if s in first), None)

    def cells(line: str) -> list[str]:
        # csv's reader keeps a quoted "1,234" one cell, where a split would make two columns of it.
        parts = next(csv.reader([line], delimiter=sep, skipinitialspace=True)) if sep else line.split()
        return [p.strip().strip("\"'").strip() for p in parts]

    if all(_parse_number(c) is None for c in cells(first)):
        lines = lines[1:]
    if not lines:
        raise ConfigError(f"CSV needs at least {_MIN_SAMPLES} data rows (got 0: only a header)")
    # The first data row sets the columns; its cells are checked first, so prose says "not a number"
    # rather than counting its words as columns.
    first_no, first_row = lines[0][0], cells(lines[0][1])
    for c, cell in enumerate(first_row):
        if _parse_number(cell) is None:
            raise _not_a_number(first_no, c + 1, cell)
    ncol = len(first_row)
    if ncol > 2:
        raise ConfigError(f"CSV has {ncol} columns; expected 1 or 2 numeric columns (x, or x and y)")
    if len(lines) > max_rows:
        raise ConfigError(f"CSV has {len(lines):,} data rows; the limit is {max_rows:,}")
    if len(lines) < _MIN_SAMPLES:
        raise ConfigError(f"CSV needs at least {_MIN_SAMPLES} data rows (got {len(lines)})")
    out = np.empty((len(lines), ncol))
    for r, (lineno, line) in enumerate(lines):
        row = cells(line)
        if len(row) != ncol:
            raise ConfigError(
                f"CSV line {lineno} has {len(row)} column{'s' if len(row) != 1 else ''}; every row needs the "
                f"{ncol} column{'s' if ncol != 1 else ''} of the first data row (line {first_no})"
            )
        for c, cell in enumerate(row):
            v = _parse_number(cell)
            if v is None:
                raise _not_a_number(lineno, c + 1, cell)
            if not math.isfinite(v):
                raise ConfigError(
                    f"CSV line {lineno}, column {c + 1}: {cell!r} is not finite; "
                    "samples must be finite numbers (no NaN or inf)"
                )
            out[r, c] = v
    return out


IMAGE_FORMATS = "PNG, JPEG, GIF, BMP or WebP"
_PILLOW_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
"""The only decoders a picture may reach, picked by the file's content (its magic bytes), never by its name:
Pillow's other plugins include PostScript, which hands the file to Ghostscript."""
MAX_IMAGE_PIXELS = 25_000_000
"""The largest picture :func:`image_from_file` decodes (5,000 × 5,000): it is shrunk to 256 × 256 anyway,
and a small file can claim a huge size (a "decompression bomb")."""


def image_from_file(
    data: bytes | os.PathLike | IO, *, max_pixels: int = 256 * 256, max_source_pixels: int = MAX_IMAGE_PIXELS
) -> np.ndarray:
    """Load a picture as grayscale intensities, shrunk so that the square on its longest side holds at most
    ``max_pixels`` pixels.

    Transparent areas count as white paper (the picture is composited over white before conversion).

    Arguments:
        data: file bytes, a path, or a file object (e.g. an upload).
        max_pixels: larger pictures are downsampled (aspect ratio kept) until their longest side squared, the
            square they are padded to as a density, is at most this many pixels.
        max_source_pixels: refuse pictures with more pixels than this, before decoding them.

    Returns:
        intensities, shape (H, W), float64 in [0, 1] (0 black, 1 white), max(H, W)² <= max_pixels.

    Raises:
        ConfigError: if the data is empty, not a readable image, or too large.
    """
    from PIL import Image, UnidentifiedImageError  # imported here so that loading cnfviz.targets stays light

    max_pixels = check_int_range(_plain_int(max_pixels), "max_pixels", lo=1)
    max_source_pixels = check_int_range(_plain_int(max_source_pixels), "max_source_pixels", lo=1)
    src = io.BytesIO(bytes(data)) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if isinstance(src, io.BytesIO) and not src.getbuffer().nbytes:
        raise ConfigError(f"the picture file is empty (0 bytes); expected a {IMAGE_FORMATS} picture")
    side = math.isqrt(max_source_pixels)
    too_big = f"the limit is {max_source_pixels:,} pixels (about {side:,} × {side:,}); shrink the picture first"
    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its own limit; ours is lower and checked just below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(src, formats=_PILLOW_FORMATS)
        with im:
            if im.format not in (*_PILLOW_FORMATS, "MPO"):  # MPO: the JPEG plugin's multi-picture JPEG
                raise UnidentifiedImageError(im.format)
            w, h = im.size
            if w * h == 0:
                raise ConfigError(f"the picture has no pixels ({w} × {h})")
            if w * h > max_source_pixels:
                raise ConfigError(f"the picture is {w:,} × {h:,} pixels; {too_big}")
            im.load()
            scale = 255.0
            if im.mode.startswith("I;16") or im.mode == "I":
                # 16-bit grayscale (PNG): Pillow's conversion to 8 bits would clip everything above 255 to white.
                levels = np.asarray(im, dtype=np.float64) / 65535.0
                gray = Image.fromarray(np.clip(levels, 0.0, 1.0).astype(np.float32), mode="F")
                scale = 1.0
            elif im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                gray = Image.alpha_composite(bg, rgba).convert("L")
            else:
                gray = im.convert("L")
    except UnidentifiedImageError:
        raise ConfigError(
            f"not a readable image: the file is not a {IMAGE_FORMATS} picture (or its header is damaged)"
        ) from None
    except Image.DecompressionBombError as err:
        count = re.search(r"\((\d+) pixels\)", str(err))
        size = f"has {int(count.group(1)):,} pixels" if count else "is far too large"
        raise ConfigError(f"the picture {size}; {too_big}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        detail = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise ConfigError(f"not a readable image: the file is damaged or cut short ({detail})") from None
    w, h = gray.size
    # Bounded by the longest side, not the pixel count: a picture becomes a density on a square (the app pads
    # it with zero weight), so a 10,000 × 1 strip that passes a pixel count would become 10,000² floats.
    side = max(w, h)
    if side * side > max_pixels:
        s = math.isqrt(max_pixels) / side
        size = (max(1, int(w * s)), max(1, int(h * s)))
        gray = gray.resize(size, Image.Resampling.LANCZOS)  # exactly: thumbnail rounds a thin strip shorter
    return np.clip(np.asarray(gray, dtype=np.float64) / scale, 0.0, 1.0)
