"""Learn: the ideas behind FFJORD, step by step, each with a small figure computed by cnfviz."""

from pathlib import Path

import streamlit as st

from cnfviz import default_config
from cnfviz.features import learn as explain

ASSET_PATH = Path(__file__).resolve().parents[1] / "assets" / "learn" / "learn_assets.npz"
# (anchor, title) of every section, in page order: the table of contents links each anchor. (A comment, not a
# docstring: Streamlit would draw a bare string on the page.)
LESSONS: tuple[tuple[str, str], ...] = (
    ("change-of-variables", "1. Change of variables"),
    ("instantaneous-change-of-variables", "2. The instantaneous change of variables"),
    ("hutchinson", "3. The exact trace against Hutchinson's estimator"),
    ("time-span", "4. Why the time span matters"),
    ("regularizers", "5. Kinetic and Jacobian regularizers"),
    ("sampling", "6. Sampling by integrating backwards"),
    ("flow-matching", "7. Two ways to train: likelihood and flow matching"),
    ("train-one-yourself", "Now train one yourself"),
)
AFFINE_SCALES = (-3.0, -2.0, -1.5, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)


@st.cache_data(show_spinner=False, max_entries=64)
def affine(a: float, b: float) -> explain.AffineDemo:
    return explain.affine_change_of_variables(a, b)


@st.cache_data(show_spinner=False, max_entries=64)
def linear_flow(trace: float, rotation: float) -> explain.LinearFlowDemo:
    return explain.linear_flow_demo(trace, rotation)


@st.cache_data(show_spinner=False, max_entries=64)
def hutchinson(dim: int, probes: int) -> explain.HutchinsonDemo:
    return explain.hutchinson_demo(dim, probes)


@st.cache_data(show_spinner=False, max_entries=8)
def flow_matching(pairing: str) -> explain.FlowMatchingDemo:
    return explain.flow_matching_demo(pairing)


@st.cache_resource(show_spinner=False)
def assets(path: str, mtime: float) -> explain.LearnAssets | None:
    # mtime is part of the key so a regenerated file is picked up without restarting the server.
    try:
        return explain.load_learn_assets(path)
    except (FileNotFoundError, ValueError, KeyError):
        return None


def stored() -> explain.LearnAssets | None:
    mtime = ASSET_PATH.stat().st_mtime if ASSET_PATH.exists() else 0.0
    return assets(str(ASSET_PATH), mtime)


def missing() -> None:
    st.info(
        "This figure is precomputed and its data file is missing or out of date. "
        "Regenerate it with `python assets/learn/make_learn_assets.py` (a few minutes)."
    )


st.title("Learn: how a continuous normalizing flow works")
st.markdown(
    "A **continuous normalizing flow** (CNF) turns a simple distribution into a complicated one by letting "
    "every point drift along a learned vector field. This page follows the path of the "
    "DiffEqFlux.jl tutorial on continuous normalizing flows, which fits a 10-parameter network to samples "
    "of $\\mathcal{N}(6, 0.7)$, one idea at a time. "
    "Every figure below is computed by the cnfviz library; move the knobs and it is computed again."
)
st.markdown("**Contents**  \n" + "  \n".join(f"[{title}](#{anchor})" for anchor, title in LESSONS))

# ---------------------------------------------------------------------------------------------- 1
st.header(LESSONS[0][1], anchor=LESSONS[0][0])
st.markdown(
    "Push a random variable through an invertible map and its density changes by how much the map "
    "stretches space. For $x = a z + b$ with $z \\sim \\mathcal{N}(0, 1)$, the same probability is spread "
    "over an interval $|a|$ times wider, so the density is $|a|$ times lower:"
)
st.latex(r"p_x(x) = p_z(z)\,\left|\frac{dx}{dz}\right|^{-1} = \frac{p_z\big((x-b)/a\big)}{|a|}")
st.markdown(
    "In $d$ dimensions $|dx/dz|$ becomes $|\\det \\partial x/\\partial z|$, which costs $O(d^3)$ for a general "
    "map. That cost is what continuous flows avoid."
)
col_a, col_b = st.columns(2)
a = col_a.select_slider("scale a", options=AFFINE_SCALES, value=2.0, key="learn_cov_a")
b = col_b.slider("shift b", min_value=-3.0, max_value=6.0, value=1.0, step=0.5, key="learn_cov_b")
demo = affine(float(a), float(b))
st.plotly_chart(explain.change_of_variables_figure(demo), width="stretch", key="learn_chart_cov")
st.caption(
    f"What you see: samples z ~ N(0, 1) (grey dashed density) pushed through x = {a:g}·z + {b:g}; their "
    f"histogram (orange bars) matches the formula's p_x (dark line), which integrates to {demo.integral:.3f}."
)

# ---------------------------------------------------------------------------------------------- 2
st.header(LESSONS[1][1], anchor=LESSONS[1][0])
st.markdown(
    "A CNF does not apply one big map: it moves every point along an ODE $dz/dt = f(t, z)$. Over an instant "
    "$dt$ the map is $z + f\\,dt$, whose log-determinant is, to first order, "
    "$\\operatorname{tr}(\\partial f/\\partial z)\\,dt$. "
    "So the log-density changes at minus the divergence, and only a **trace**, not a determinant, is needed:"
)
st.latex(
    r"\frac{d \log p(z(t))}{dt} = -\operatorname{tr}\!\left(\frac{\partial f}{\partial z}\right),"
    r"\qquad \log p(x) = \log p(z(t_0))"
    r" - \int_{t_0}^{t_1} \operatorname{tr}\!\left(\frac{\partial f}{\partial z}\right) dt"
)
st.markdown(
    "FFJORD integrates $\\log p$ alongside $z$. For a linear field $f(z) = A z$ the divergence is the constant "
    "$\\operatorname{tr} A$, so $\\log p$ must fall by exactly $\\operatorname{tr}(A)\\,t$ along every path. "
    "The rotation $\\omega$ bends the paths but moves no density."
)
col_tr, col_rot = st.columns(2)
trace = col_tr.slider("tr(A): expansion rate", -2.0, 2.0, 1.0, 0.25, key="learn_lin_trace")
rotation = col_rot.slider("ω: rotation", 0.0, 3.0, 1.5, 0.25, key="learn_lin_rotation")
flow = linear_flow(float(trace), float(rotation))
st.plotly_chart(explain.linear_flow_figure(flow), width="stretch", key="learn_chart_linear")
gap = float(abs(flow.logp_ode - flow.logp_exact).max())
st.caption(
    f"What you see: left, six points carried by dz/dt = A z from t = 0 to 1; right, log p along each path "
    f"from the ODE solver (lines) against log N(z₀) − tr(A)·t (circles). Largest gap: {gap:.1e}."
)

# ---------------------------------------------------------------------------------------------- 3
st.header(LESSONS[2][1], anchor=LESSONS[2][0])
st.markdown(
    "The exact trace needs the whole Jacobian: $d$ Jacobian-vector products, one per dimension. "
    "Hutchinson's estimator needs one: for a random probe $\\varepsilon$ with "
    "$\\mathbb{E}[\\varepsilon\\varepsilon^\\top] = I$,"
)
st.latex(
    r"\operatorname{tr}(J) = \mathbb{E}_\varepsilon\!\left[\varepsilon^\top J \varepsilon\right],\qquad"
    r"\operatorname{Var}\!\left[\varepsilon^\top J \varepsilon\right] = \begin{cases}"
    r"2\lVert S\rVert_F^2 & \varepsilon \sim \mathcal{N}(0, I) \\"
    r"2\big(\lVert S\rVert_F^2 - \sum_i S_{ii}^2\big) & \varepsilon_i = \pm 1"
    r"\end{cases}"
)
st.markdown(
    "with $S = \\tfrac{1}{2}(J + J^\\top)$. It is unbiased but noisy. Rademacher probes ($\\pm 1$) are never "
    "noisier than Gaussian ones, because "
    "$\\varepsilon_i^2 = 1$ removes the diagonal's share; in one dimension they are exact. FFJORD draws one "
    "probe per ODE solve, and averaging $k$ probes divides the variance by $k$."
)
col_d, col_k = st.columns(2)
dim = col_d.select_slider("dimension d", options=[1, 2, 4, 8, 16, 32], value=8, key="learn_hutch_dim")
probes = col_k.select_slider("probes per estimate k", options=[1, 2, 4, 8, 16, 32], value=1, key="learn_hutch_probes")
hutch = hutchinson(int(dim), int(probes))
st.plotly_chart(explain.hutchinson_figure(hutch), width="stretch", key="learn_chart_hutchinson")
st.caption(
    f"What you see: 2,000 Hutchinson estimates of tr(∂f/∂z) for a random {dim}-D network at one point, each "
    f"averaging {probes} probe(s), Gaussian (blue) and Rademacher (purple); the dark line is the exact trace."
)
st.dataframe(
    {
        "probe": list(explain.HUTCHINSON_NOISES),
        "mean": [float(hutch.estimates[n].mean()) for n in explain.HUTCHINSON_NOISES],
        "variance (measured)": [float(hutch.estimates[n].var(ddof=1)) for n in explain.HUTCHINSON_NOISES],
        "variance (formula)": [hutch.theory_var[n] for n in explain.HUTCHINSON_NOISES],
    },
    hide_index=True,
)

# ---------------------------------------------------------------------------------------------- 4
st.header(LESSONS[3][1], anchor=LESSONS[3][0])
st.markdown(
    "The tutorial's network, `Chain(Dense(1, 3, tanh), Dense(3, 1, tanh))`, ends in a tanh, so every point "
    "moves at speed $|dz/dt| < 1$: in a time span of length $T$ it travels less than $T$. The data sit around 6, "
    "so a span of 1 cannot carry $\\mathcal{N}(0, 1)$ there; the best the flow can do is stretch a tail towards "
    "the data, and the fit is poor. The tutorial raised the span from 1 to 10, which leaves time to spare."
)
precomputed = stored()
if precomputed is None:
    missing()
else:
    ends = [run.t1 for run in precomputed.time_span]
    t1 = st.select_slider(
        "time span (0, T): T =", options=ends, value=10.0 if 10.0 in ends else ends[-1], key="learn_tspan"
    )
    run = precomputed.time_span_for(float(t1))
    st.plotly_chart(explain.time_span_figure(run), width="stretch", key="learn_chart_tspan")
    st.caption(
        f"What you see: left, the density the seed tutorial learns with time span (0, {t1:g}) against the true "
        f"N(6, 0.7); right, p(x, t) as the flow carries N(0, 1) (dark = dense), with the speed limit x = t dashed."
    )
    col1, col2, col3 = st.columns(3)
    col1.metric("seed TV (tutorial's metric)", f"{run.seed_tv:.4f}", help="½·mean |p_model − p_true| on the data")
    col2.metric("training NLL (nats)", f"{run.nll:.3f}")
    col3.metric("seed TV the tutorial reported (T = 10)", "0.0314")

# ---------------------------------------------------------------------------------------------- 5
st.header(LESSONS[4][1], anchor=LESSONS[4][0])
st.markdown(
    "Many vector fields carry the base to the same data; most take winding routes that cost the solver "
    "extra steps. RNODE ([Finlay et al., 2020](https://arxiv.org/abs/2002.02798)) adds two penalties, "
    "integrated along each path with the ODE:"
)
st.latex(
    r"\lambda_1 = \int_{t_0}^{t_1} \lVert f(t, z)\rVert^2\,dt,\qquad"
    r"\lambda_2 = \int_{t_0}^{t_1} \left\lVert \frac{\partial f}{\partial z}\right\rVert_F^2 dt"
)
st.markdown(
    "The kinetic energy $\\lambda_1$ favours straight paths at constant speed (the optimal-transport route); "
    "the Jacobian norm $\\lambda_2$ favours smooth fields in which neighbours move together. These are the "
    "$\\lambda_1, \\lambda_2$ of the tutorial's `logpx, λ₁, λ₂ = model(train_data, θ)`; in cnfviz their "
    "weights are `lambda_kinetic` and `lambda_jacobian`."
)
if precomputed is None:
    missing()
else:
    choices = {"kinetic": "kinetic λ₁", "jacobian": "Jacobian λ₂", "both": "both"}
    names = [n for n in choices if n in {r.name for r in precomputed.regularizers}]
    if names:
        pick = st.radio("regularizer", names, format_func=choices.get, horizontal=True, key="learn_reg")
        reference, other = precomputed.regularizer_for("none"), precomputed.regularizer_for(pick)
        st.plotly_chart(explain.regularizer_figure(reference, other), width="stretch", key="learn_chart_reg")
        st.caption(
            f"What you see: {min(80, reference.paths.shape[1])} base points carried from t₀ (grey) to t₁ (orange) "
            "by a flow trained on two moons, without a regularizer (left) and with one (right); dots mark equal "
            "time steps, and λ₁, λ₂ are measured on held-out data."
        )
        st.dataframe(
            {
                "trained with": [r.name for r in precomputed.regularizers],
                "λ₁ (kinetic)": [r.kinetic for r in precomputed.regularizers],
                "λ₂ (Jacobian)": [r.jacobian for r in precomputed.regularizers],
                "NLL (nats)": [r.nll for r in precomputed.regularizers],
                "solver steps (NFE)": [r.nfe for r in precomputed.regularizers],
                "straightness": [r.straightness for r in precomputed.regularizers],
            },
            hide_index=True,
            column_config={
                "NLL (nats)": st.column_config.NumberColumn(format="%.3f", help="held-out negative log-likelihood"),
                "solver steps (NFE)": st.column_config.NumberColumn(
                    help="dynamics evaluations an adaptive solver needs for the density"
                ),
                "straightness": st.column_config.NumberColumn(
                    format="%.3f", help="mean |end − start| / path length; 1 means straight lines"
                ),
            },
        )

# ---------------------------------------------------------------------------------------------- 6
st.header(LESSONS[5][1], anchor=LESSONS[5][0])
st.markdown(
    "The same ODE runs both ways. **Sampling** integrates forward: draw $z \\sim \\mathcal{N}(0, I)$ at $t_0$ "
    "and solve to $t_1$ (`transform`). **Density evaluation** integrates backward: pull $x$ from $t_1$ to "
    "$t_0$ (`inverse`), then read off $\\log \\mathcal{N}(z)$ and add the integrated trace. Trajectories of an "
    "ODE never cross, so the map is invertible and the data land back on the Gaussian."
)
if precomputed is None:
    missing()
else:
    times = precomputed.sampling.times
    frame = st.select_slider(
        "time t: slide it down to t₀ to pull the data back",
        options=range(len(times)),
        value=len(times) - 1,
        format_func=lambda k: f"{times[k]:.1f}",
        key="learn_sample_t",
    )
    st.plotly_chart(
        explain.sampling_figure(precomputed.sampling, int(frame)), width="stretch", key="learn_chart_sampling"
    )
    mean, cov = precomputed.sampling.pulled_mean, precomputed.sampling.pulled_cov
    st.caption(
        f"What you see at t = {times[frame]:.2f}: left, base samples pushed forward from t₀ = {times[0]:g}; right, "
        f"held-out data pulled back from t₁ = {times[-1]:g}. At t₀ the pulled data have mean "
        f"({mean[0]:.2f}, {mean[1]:.2f}) and variances ({cov[0, 0]:.2f}, {cov[1, 1]:.2f}), close to N(0, I)."
    )

# ---------------------------------------------------------------------------------------------- 7
st.header(LESSONS[6][1], anchor=LESSONS[6][0])
st.markdown(
    "Everything above trains by **maximum likelihood**: every iteration solves the ODE with the divergence "
    "and back-propagates through the solve. **Flow matching** ([Lipman et al., 2023]"
    "(https://arxiv.org/abs/2210.02747); [Tong et al., 2024](https://arxiv.org/abs/2302.00482)) trains the "
    "same network without a solve. Pair a noise point $x_0$ with a data point $x_1$, pick a time $t$ at random, "
    "and ask the field to match the velocity of the straight line between them:"
)
st.latex(
    r"x_t = (1 - s)\,x_0 + s\,x_1,\quad s = \frac{t - t_0}{t_1 - t_0},\qquad"
    r"\mathcal{L} = \mathbb{E}\,\Big\lVert f(t, x_t) - \frac{x_1 - x_0}{t_1 - t_0}\Big\rVert^2"
)
cost = explain.likelihood_iteration_cost(default_config("8gaussians"))
st.markdown(
    "Each straight **conditional** path crosses others, and no field can follow them all. The regression's "
    "minimiser is their average at each point, the **marginal** field, whose paths bend and never collide: "
    "it carries the noise to the data, so the trained network is a CNF like any other, with a likelihood "
    "computed as in section 2. The loss never reaches zero (the crossing paths disagree), so compare runs by "
    "their test NLL. One iteration evaluates the field once, without its Jacobian"
    + (
        f"; a likelihood iteration with the fast 2D defaults evaluates the field and its Jacobian {cost} times "
        "and back-propagates through all of them."
        if cost
        else "."
    )
    + " Pairing the batch by **optimal transport** (the assignment of least total squared distance) "
    "uncrosses most lines, which straightens the learned field and makes it cheaper to sample."
)
pairing = st.radio(
    "pairing of noise and data",
    list(explain.FLOW_MATCHING_PAIRINGS),
    format_func={"independent": "independent", "ot": "minibatch OT"}.get,
    horizontal=True,
    key="learn_fm_pairing",
)
fm = flow_matching(str(pairing))
st.plotly_chart(explain.flow_matching_figure(fm), width="stretch", key="learn_chart_fm")
st.caption(
    f"What you see: left, {len(fm.x0)} noise points joined to their data points on a ring of 8 Gaussians by "
    f"straight lines, {fm.crossings} pairs of which cross (mean squared length {fm.pair_cost:.1f}); right, the "
    f"same noise points carried by {fm.marginal_field}: straightness {fm.marginal_straightness:.3f} (1 is a "
    f"straight line), mean length {fm.marginal_length:.2f}, ending within {fm.marginal_end_error:.1f} sd of a mode."
)
st.markdown(
    ":material/compare_arrows: [Watch the same network learn by each objective on the Compare page]"
    "(compare?preset=two_ways): likelihood, flow matching and OT flow matching, each with its test NLL and "
    "its sampling cost."
)

# ---------------------------------------------------------------------------------------------- 8
st.header(LESSONS[7][1], anchor=LESSONS[7][0])
st.markdown(
    "The Train page runs the whole tutorial live: the 10-parameter network, $\\mathcal{N}(6, 0.7)$, "
    "time span (0, 10), Adam then LBFGS, and the total-variation check at the end."
)
if st.button("Open the Train page with the seed tutorial", key="learn_open_train", type="primary"):
    st.switch_page("app_pages/train.py", query_params={"preset": "seed"})
