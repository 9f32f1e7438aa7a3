"""The app's features, in plain Python (no streamlit): links, comparisons, exported code, lessons.

================  ==========================================================================
``links``         a TrainConfig as a readable URL query, and back
``compare``       several runs side by side: knobs, tables of runs, results
``export``        a config as a runnable Python script
``learn``         the Learn page: one module per lesson (its numbers and its figure) and their assets
================  ==========================================================================
"""

__all__: list[str] = []
