"""An externally managed Python (PEP 668), as Debian and Ubuntu ship it: the fresh-machine test
sets up the project with one, so it proves the set-up works where `pip install --user` is
refused."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

MARKER = "EXTERNALLY-MANAGED"
DEBIAN_PYTHON = Path("/usr/bin/python3")
MARKER_TEXT = "[externally-managed]\nError=marked by the phishguard tests (PEP 668)\n"


def stdlib_dir(python: Path) -> Path:
    """Where `python` keeps its standard library (and PEP 668 its marker)."""
    done = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    return Path(done.stdout.strip())


def is_marked(python: Path) -> bool:
    return python.is_file() and (stdlib_dir(python) / MARKER).is_file()


def externally_managed_python(workdir: Path, candidate: Path = DEBIAN_PYTHON) -> Path:
    """`candidate` if it is externally managed; else a copy of it that is: its binary in
    `workdir`/bin, beside a standard library of links to the real one plus the marker (Python
    finds its prefix from where its binary lies, so the copy reads the marker)."""
    if is_marked(candidate):
        return candidate
    real = Path(os.path.realpath(candidate))
    stdlib = stdlib_dir(real)
    copy_bin = workdir / "bin"
    copy_lib = workdir / "lib" / stdlib.name
    copy_bin.mkdir(parents=True)
    copy_lib.mkdir(parents=True)
    shutil.copy2(real, copy_bin / "python3")
    for entry in stdlib.iterdir():
        (copy_lib / entry.name).symlink_to(entry)
    (copy_lib / MARKER).write_text(MARKER_TEXT)
    python = copy_bin / "python3"
    assert is_marked(python), f"{python}: the marked copy does not see its marker"
    return python


def pip_user_install_refused(python: Path, home: Path) -> str:
    """What `python -m pip install --user` answers (nothing is downloaded: --no-index)."""
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--user", "--no-index", "uv"],
        capture_output=True,
        text=True,
        env={"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(home)},
        timeout=120,
    )
    assert done.returncode != 0, f"{python}: pip install --user was accepted"
    return done.stdout + done.stderr
