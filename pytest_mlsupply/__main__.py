"""``python -m pytest_mlsupply``: the command line outside pytest."""

from pytest_mlsupply.cli import main

raise SystemExit(main())
