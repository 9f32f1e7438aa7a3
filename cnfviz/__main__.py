"""``python -m cnfviz`` is the ``cnfviz`` command."""

from .cli import main

raise SystemExit(main())
