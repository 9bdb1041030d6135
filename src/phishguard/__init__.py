"""phishguard: a reproducible, honestly evaluated phishing-website classifier."""

__version__ = "0.1.0"


class PhishguardError(Exception):
    """An error the user can fix; entry points print its message as one line, no traceback."""


class DataSourceError(PhishguardError, ValueError):
    """A source cannot be read; the message names the source and the problem."""


def first_line(error: BaseException) -> str:
    """The first line of `error`'s message (a driver's can run to many), else its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
