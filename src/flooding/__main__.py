"""`python -m flooding ...` is the `flooding` command."""

from flooding.cli import main

raise SystemExit(main())
