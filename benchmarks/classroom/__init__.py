"""The classroom benchmark's parts: ``scenario`` (students in headless Chromium, the run), ``report`` (the
figures and their table) and ``observer.js`` (what each page stamps); ``bench_classroom.py`` is its CLI."""

__all__: list[str] = []
