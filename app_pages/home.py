"""Home page: what a continuous normalizing flow is, a preview of one, and the way to the Train page."""

from pathlib import Path

import streamlit as st

PREVIEW = Path(__file__).resolve().parent.parent / "assets" / "preview.gif"

st.title("cnfviz: watch a flow learn")
text, picture = st.columns([3, 2], gap="large")
with text:
    st.markdown(
        """
A **continuous normalizing flow** (CNF) learns a probability distribution by *moving* a simple one.
Start with samples z of a standard Gaussian and let each of them follow an ODE,
$\\frac{dz}{dt} = f_\\theta(t, z)$, where $f_\\theta$ is a small neural network: at the end time the points
land on the target distribution.

Because the motion is smooth and invertible, the density comes along exactly. Along a path it changes by
the *instantaneous change of variables*, $\\frac{d \\log p(z(t))}{dt} = -\\operatorname{tr}
\\frac{\\partial f_\\theta}{\\partial z}$, so training simply maximises the log-likelihood of the data.
**FFJORD** makes this cheap with an unbiased estimate of that trace.

On the **Train** page you pick a target (a 1D density, a 2D toy set or any `scipy.stats` distribution),
set the network and the time span, press Train, and watch the loss fall, the learned density meet the
true one, and the trajectories carry the Gaussian onto the data, live.
"""
    )
    st.page_link("app_pages/train.py", label="Train a flow now", icon=":material/rocket_launch:")
with picture:
    if PREVIEW.is_file():
        st.image(
            str(PREVIEW),
            caption="A flow trained on two moons: Gaussian samples (t = 0) move along the learned ODE onto the "
            "data and back. Colour marks where each point started.",
        )
    else:
        st.info("The preview animation is missing: run `python assets/make_preview.py` to draw it.")
