"""Regenerate ``assets/preview.gif``: a flow trained on two moons, its samples flowing from z to x and back.

Run from the repository root (about a minute or two on a laptop CPU)::

    python assets/make_preview.py

The home page shows the GIF; it stays well under 1 MB (320 px, ~100 frames, a small palette).
"""

from __future__ import annotations

import argparse
import colorsys
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from cnfviz import Trainer, default_config

HERE = Path(__file__).resolve().parent


def _colours(z0: np.ndarray) -> list[tuple[int, int, int]]:
    """A hue per point from the angle of its base sample, so the viewer can follow where each region goes."""
    angle = (np.arctan2(z0[:, 1], z0[:, 0]) + math.pi) / (2 * math.pi)
    radius = np.clip(np.hypot(z0[:, 0], z0[:, 1]) / 2.5, 0, 1)
    out = []
    for h, r in zip(angle, radius, strict=True):
        rgb = colorsys.hsv_to_rgb(float(h), 0.35 + 0.6 * float(r), 0.85)
        out.append(tuple(int(255 * c) for c in rgb))
    return out


def render(times: np.ndarray, paths: np.ndarray, size: int, hold: int, extent: float) -> list[Image.Image]:
    """Frames of the points at each time, forward then back, each end held for ``hold`` frames."""
    colours = _colours(paths[0])
    scale = size / (2 * extent)

    def frame(k: int) -> Image.Image:
        img = Image.new("RGB", (size, size), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        xy = paths[k]
        px = (xy[:, 0] + extent) * scale
        py = size - (xy[:, 1] + extent) * scale
        for x, y, c in zip(px, py, colours, strict=True):
            draw.ellipse((x - 1.6, y - 1.6, x + 1.6, y + 1.6), fill=c)
        draw.text((8, 6), f"t = {times[k]:.2f}", fill=(60, 60, 60))
        return img

    forward = [frame(k) for k in range(len(times))]
    return [forward[0]] * hold + forward + [forward[-1]] * hold + forward[::-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=1200, help="Adam iterations")
    parser.add_argument("--points", type=int, default=900, help="samples to animate")
    parser.add_argument("--size", type=int, default=320, help="GIF width and height in pixels")
    parser.add_argument("--out", type=Path, default=HERE / "preview.gif")
    args = parser.parse_args()

    config = default_config("moons", adam_iters=args.iters, eval_every=0, seed=0)
    trainer = Trainer(config)
    result = trainer.run(final_metrics=False)
    print(f"trained {result.iterations} iterations in {result.train_seconds:.0f} s: {result.reason}")
    model = trainer.model.eval()
    times, paths = model.trajectories(args.points, 41, generator=torch.Generator().manual_seed(1))
    frames = render(times.numpy(), paths.double().numpy(), args.size, hold=12, extent=4.0)
    frames = [f.quantize(colors=48, method=Image.Quantize.MEDIANCUT) for f in frames]
    frames[0].save(args.out, save_all=True, append_images=frames[1:], duration=70, loop=0, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {len(frames)} frames)")


if __name__ == "__main__":
    main()
