"""``python -m tracksvc``: the same as the ``tracksvc`` command."""

from tracksvc.cli import main

raise SystemExit(main())
