"""``python -m`` entry point (also the zipapp's)."""

from .server import main

raise SystemExit(main())
