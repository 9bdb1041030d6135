"""phishguard: a reproducible, honestly evaluated phishing-website classifier."""

import errno
import os

__version__ = "0.1.0"


class PhishguardError(Exception):
    """An error the user can fix; entry points print its message as one line, no traceback."""


class DataSourceError(PhishguardError, ValueError):
    """A source cannot be read; the message names the source and the problem."""


def first_line(error: BaseException) -> str:
    """The first line of `error`'s message (a driver's can run to many), else its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# errno → what to do, for the writes that fail for want of a writable disk.
STORAGE_ADVICE = {
    errno.ENOSPC: "free space or write elsewhere",
    errno.EDQUOT: "free space (the disk quota is reached) or write elsewhere",
    errno.EROFS: "write elsewhere, or remount it read-write",
    errno.EIO: "the disk failed a write: check it, or write elsewhere",
}
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class StorageError(PhishguardError, OSError):
    """A write refused for want of space or of a working, writable disk: one line naming the
    path and what to do (as the entry points print any OS error). `full` (ENOSPC, EDQUOT) is
    what the service answers 507 Insufficient Storage for; anything else is a 503."""

    def __init__(self, path: object, code: int, detail: str | None = None) -> None:
        cause = detail or os.strerror(code)
        super().__init__(f"{path}: {cause} ({errno.errorcode[code]}); {STORAGE_ADVICE[code]}")
        self.path = str(path)  # not OSError's `filename`, which would reshape the message
        self.code = code
        self.full = code in DISK_FULL


def storage_error(error: OSError, path: object | None = None) -> StorageError | None:
    """`error` as a `StorageError` naming `path` (else the error's own file) when it is a
    full disk, an exhausted quota or a read-only file system; None for any other error."""
    if isinstance(error, StorageError):
        return error
    if error.errno not in (*DISK_FULL, errno.EROFS):
        return None
    return StorageError(path or error.filename, error.errno)
