"""What every command-line entry point shares: logging set-up and one-line errors.

Every stage and the `phishguard` command run through `run`, so the faults an operator can meet
are each one line naming the cause, never a traceback: the project's own errors, a file that
cannot be read or written (a full disk, a missing folder, no permission), and running out of
memory.
"""

from __future__ import annotations

import errno
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
        _fail(name, str(error))
    except MemoryError as error:
        detail = f" ({error})" if str(error) else ""
        _fail(name, f"out of memory{detail}; free memory or give it less data at once")
    except OSError as error:
        _fail(name, os_error_line(error))
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def os_error_line(error: OSError) -> str:
    """An operating-system error as one line: the file (if known), the cause and its code."""
    where = f"{error.filename}: " if error.filename else ""
    cause = error.strerror or str(error) or type(error).__name__
    code = f" ({errno.errorcode[error.errno]})" if error.errno in errno.errorcode else ""
    advice = {errno.ENOSPC: "; free space or write elsewhere", errno.EDQUOT: "; free space"}
    return f"{where}{cause}{code}{advice.get(error.errno, '')}"


def _fail(name: str, message: str) -> None:
    line = f"{name}: error: {' '.join(message.splitlines())}"
    # A file name of undecodable bytes carries surrogates that no terminal encoding takes.
    line = line.encode("utf-8", "backslashreplace").decode("utf-8")
    print(line, file=sys.stderr)
    raise SystemExit(1) from None
