"""What the plots show: the arrays behind them and the plotly figures (no streamlit).

================  ==========================================================================
``style``         the one palette (one meaning per colour, on every page) and the layout helpers
``views``         arrays computed from a model: densities on grids, trajectories, vector fields
``plots``         the Train page's figures: loss, learned against true density, trajectories
``compare``       the Compare page's figures, one colour per run
================  ==========================================================================
"""

__all__: list[str] = []
