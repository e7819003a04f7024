"""``python -m emulator`` is the same as the ``chat-emulator`` console script."""

from emulator.cli import main

raise SystemExit(main())
