"""What every command-line entry point shares: logging set-up and one-line errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from phishguard import PhishguardError


def run(main: Callable[[], None], name: str) -> None:
    """Configure logging once, run `main`, and turn expected errors into one line + exit 1."""
    logging.basicConfig(level=logging.INFO, format=f"{name}: %(message)s", stream=sys.stderr)
    try:
        main()
    except PhishguardError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
