"""What every command-line entry point shares: logging set-up and one-line errors.

Every stage and the `phishguard` command run through `run`, so the faults an operator can meet
are each one line naming the cause, never a traceback: the project's own errors, a file that
cannot be read or written (a full disk, a missing folder, no permission), and running out of
memory.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable

from phishguard import STORAGE_ADVICE, PhishguardError
from phishguard.config.compose import restore_params_after_failed_experiment


def run(main: Callable[[], None], name: str) -> None:
    """Configure logging once, run `main`, and turn expected errors into one line + exit 1.
    A failure inside `dvc exp run` also puts params.yaml back (`config.compose`)."""
    logging.basicConfig(level=logging.INFO, format=f"{name}: %(message)s", stream=sys.stderr)
    try:
        _run(main, name)
    except BaseException:
        restore_params_after_failed_experiment()
        raise


def _run(main: Callable[[], None], name: str) -> None:
    try:
        main()
        sys.stdout.flush()  # redirected to a full disk, stdout fails here, not at exit
    except PhishguardError as error:
        _fail(name, str(error))
    except MemoryError as error:
        detail = f" ({error})" if str(error) else ""
        _fail(name, f"out of memory{detail}; free memory or give it less data at once")
    except OSError as error:
        if error.filename is None and not _stdout_writable():
            error = OSError(error.errno, error.strerror, "standard output")
        _fail(name, os_error_line(error))
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def os_error_line(error: OSError) -> str:
    """An operating-system error as one line: the file (if known), the cause and its code,
    and for a full or read-only disk what to do (`phishguard.STORAGE_ADVICE`)."""
    where = f"{error.filename}: " if error.filename else ""
    cause = error.strerror or str(error) or type(error).__name__
    code = f" ({errno.errorcode[error.errno]})" if error.errno in errno.errorcode else ""
    advice = f"; {STORAGE_ADVICE[error.errno]}" if error.errno in STORAGE_ADVICE else ""
    return f"{where}{cause}{code}{advice}"


def _stdout_writable() -> bool:
    """Whether stdout takes what is buffered. When not (redirected to a full disk), its
    descriptor is pointed at /dev/null: the flush at exit would otherwise fail again and
    print "Exception ignored" with a traceback."""
    try:
        sys.stdout.flush()
    except OSError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False
    return True


def _fail(name: str, message: str) -> None:
    line = f"{name}: error: {' '.join(message.splitlines())}"
    # A file name of undecodable bytes carries surrogates that no terminal encoding takes.
    line = line.encode("utf-8", "backslashreplace").decode("utf-8")
    print(line, file=sys.stderr)
    raise SystemExit(1) from None
