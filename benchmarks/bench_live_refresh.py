"""What one refresh of the Train page's live views costs the server, per chart.

A refresh of the loss (every 0.5-1 s while training) sends new arrays into the figure's cached layout and
trace styles ("refresh"; the figure itself is built only when its set of curves changes, "build + JSON");
the density and the flow are built once per new model (every few seconds) and re-sent from a cache in
between, which costs one hash. Measured on a real moons run's history and plot data, for loss histories of
several lengths (the curve is decimated to 2,000 points). Side by side, the figure JSON that
``st.plotly_chart`` would send for the same loss figure (``plotly.io.to_json``), the old path's cost.

    python benchmarks/bench_live_refresh.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

import numpy as np
import plotly.io as pio
from common import print_table, setup

from cnfviz import TrainingJob, default_config
from cnfviz.figures.plots import density_figure, flow_figure, loss_figure, loss_series
from cnfviz.ui.live_chart import Animation, chart_spec
from cnfviz.ui.views import respec


def timed(fn: object, repeats: int) -> tuple[float, object]:
    out = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1000, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    setup()
    job = TrainingJob(default_config("moons", adam_iters=40, eval_every=20), compute_final_metrics=False)
    snap = job.start().join(300).snapshot()
    vis = snap.visuals
    rows = []
    hist = snap.history
    for n in (100, 2_000, 20_000):
        # A longer history of the same shape: the curve repeated (the figure decimates it to 2,000 points).
        reps = -(-n // len(hist["iteration"]))
        long = {k: np.tile(v, reps)[:n] for k, v in hist.items() if k in ("loss", "nll", "nfe")}
        long["iteration"] = np.arange(1, n + 1)
        ms_new, spec = timed(lambda long=long: chart_spec(loss_figure(long)), args.repeats)
        plain = json.loads(spec)["figure"]
        styles = [{k: v for k, v in t.items() if k not in ("x", "y")} for t in plain["data"]]
        layout = json.dumps(plain["layout"])
        ms_fast, fast = timed(
            lambda long=long, la=layout, st=styles: respec(la, st, loss_series(long)[1]), args.repeats
        )
        ms_old, _ = timed(lambda long=long: pio.to_json(loss_figure(long), validate=False), args.repeats)
        ms_hash, _ = timed(lambda spec=spec: hashlib.blake2b(spec.encode(), digest_size=8).hexdigest(), args.repeats)
        rows.append(
            {
                "chart": f"loss, {n:,} iterations",
                "refresh (ms)": round(ms_fast, 1),
                "build + JSON (ms)": round(ms_new, 1),
                "st.plotly_chart JSON (ms)": round(ms_old, 1),
                "hash (ms)": round(ms_hash, 2),
                "sent (kB)": round(len(fast) / 1000, 1),
            }
        )
    ms, spec = timed(lambda: chart_spec(density_figure(vis.density, compact=True)), args.repeats)
    ms_hash, _ = timed(lambda: hashlib.blake2b(spec.encode(), digest_size=8).hexdigest(), args.repeats)
    rows.append(
        {
            "chart": "density (per new model)",
            "build + JSON (ms)": round(ms, 1),
            "hash (ms)": round(ms_hash, 2),
            "sent (kB)": round(len(spec) / 1000, 1),
        }
    )

    def flow_spec(field: bool) -> str:
        f = flow_figure(vis.trajectories, field=vis.field if field else None)
        anim = Animation(
            f.moving,
            f.paths,
            f.t0,
            f.t1,
            field_trace=f.field,
            field_times=f.field_times,
            field_x=f.field_x,
            field_y=f.field_y,
            label=f.label,
        )
        return chart_spec(f.figure, anim)

    for field in (False, True):
        ms, spec = timed(lambda field=field: flow_spec(field), args.repeats)
        ms_hash, _ = timed(lambda spec=spec: hashlib.blake2b(spec.encode(), digest_size=8).hexdigest(), args.repeats)
        rows.append(
            {
                "chart": "flow" + (" + vector field" if field else "") + " (per new model)",
                "build + JSON (ms)": round(ms, 1),
                "hash (ms)": round(ms_hash, 2),
                "sent (kB)": round(len(spec) / 1000, 1),
            }
        )
    title = f"Server cost of one live refresh (median of {args.repeats}; a cached chart costs only its hash)"
    print_table(rows, title)
    print(f"plot data of the run: computed in {vis.seconds * 1000:.0f} ms on the training thread (not per refresh)")


if __name__ == "__main__":
    main()
