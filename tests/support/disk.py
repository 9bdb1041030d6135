"""A real full disk for the tests: a tiny tmpfs filled to the last byte (needs root, as
mounting does; the tests that need it skip otherwise)."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SIZE = "256k"


@contextmanager
def full_tmpfs(mount_point: Path) -> Iterator[Path]:
    """Mount a `SIZE` tmpfs at `mount_point`, fill it until a write fails with ENOSPC, and
    yield it; unmounted afterwards. Skips the test where mounting is not allowed."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        (mount_point / "feedback").mkdir()  # folders first: a full tmpfs may refuse them too
        (mount_point / "predictions").mkdir()
        fill(mount_point / "filler")
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> None:
    """Write to `path` until the disk is full (the write fails with ENOSPC)."""
    with path.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
