"""Where an artifact came from: file hashes, git revision, library versions."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from phishguard import PhishguardError
from phishguard.io import write_atomic

TRACKED_LIBRARIES = ("numpy", "pandas", "scikit-learn", "xgboost-cpu", "pandera", "skops")


class IntegrityError(PhishguardError, RuntimeError):
    """A file's bytes do not match the hash recorded when it was written."""


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_revision() -> str:
    """The current commit, `-dirty` if tracked files (but dvc.lock, which repro itself
    rewrites) differ from it; `unknown` outside git."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}-dirty" if dirty else rev


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a model's bytes."""
    versions = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_json(path: Path, document: Any) -> None:
    """Write JSON deterministically (sorted keys, fixed indentation, trailing newline), whole
    or not at all (`phishguard.io.write_atomic`)."""
    write_atomic(path, json.dumps(document, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
