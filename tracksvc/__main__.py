"""``python -m tracksvc``: the same as the ``tracksvc`` command."""

from tracksvc.cli.main import main

raise SystemExit(main())
