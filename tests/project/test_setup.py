"""The Makefile's set-up on a newcomer's machine: uv bootstrapped without touching an externally
managed Python (PEP 668), and system packages installed only when asked for. Stub commands on
a private PATH stand in for python3, pip and apt-get, so nothing is installed for real here
(tests/e2e/test_fresh_machine.py does it for real)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

STUB_PYTHON = """#!/bin/bash
echo "python3 $*" >> "$STUB_LOG"
if [ "$1" = -c ]; then echo "$STUB_USERBASE"; exit 0; fi
if [ "$1 $2" = "-m venv" ]; then
  [ -n "$STUB_NO_VENV" ] && { echo "ensurepip is not available" >&2; exit 1; }
  mkdir -p "$3/bin"
  printf '#!/bin/bash\\necho "pip $*" >> "$STUB_LOG"\\nprintf "#!/bin/sh\\\\n" > "%s/bin/uv"\\n'\\
'chmod +x "%s/bin/uv"\\n' "$3" "$3" > "$3/bin/pip"
  chmod +x "$3/bin/pip"
  exit 0
fi
exit 3
"""


def stub(directory: Path, name: str, text: str) -> None:
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)


def make(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`make -s ARGS` in the repository with only stubs, /usr/bin and /bin on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub(bin_dir, "python3", STUB_PYTHON)
    base = {
        "HOME": str(tmp_path / "home"),
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "STUB_LOG": str(tmp_path / "calls.log"),
        "STUB_USERBASE": str(tmp_path / "no-user-base"),
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        ["make", "-s", "-C", str(REPO), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def calls(tmp_path: Path) -> str:
    log = tmp_path / "calls.log"
    return log.read_text() if log.exists() else ""


def test_uv_is_bootstrapped_in_a_private_venv_never_with_pip_install_user(tmp_path) -> None:
    target = tmp_path / "cache" / "phishguard" / "uv"
    done = make(tmp_path, f"{target}/bin/uv", UV_BOOTSTRAP_DIR=str(target))
    assert done.returncode == 0, done.stderr
    assert (target / "bin" / "uv").is_file()
    log = calls(tmp_path)
    assert f"python3 -m venv {target}" in log
    assert "pip install" in log and " uv" in log
    # What PEP 668 refuses, or overrides: never used.
    for forbidden in ("--user", "--break-system-packages"):
        assert forbidden not in log, log


def test_uv_bootstrap_goes_under_the_users_cache_by_default(tmp_path) -> None:
    done = make(tmp_path, "-p", "help")
    assert done.returncode == 0, done.stderr
    expected = f"UV := {tmp_path}/home/.cache/phishguard/uv/bin/uv"
    assert expected in done.stdout


def test_a_python_without_venv_support_is_told_to_install_python3_venv(tmp_path) -> None:
    target = tmp_path / "uv"
    done = make(tmp_path, f"{target}/bin/uv", UV_BOOTSTRAP_DIR=str(target), STUB_NO_VENV="1")
    assert done.returncode != 0
    assert "sudo apt-get install python3-venv" in done.stderr
    assert not target.exists(), "a half-made venv would be taken for a working one"


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """Stubs of `id` (root) and `apt-get` (logs its arguments) first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub(bin_dir, "id", "#!/bin/sh\necho 0\n")
    stub(bin_dir, "apt-get", '#!/bin/sh\necho "apt-get $*" >> "$STUB_LOG"\n')
    return tmp_path


def test_make_test_tools_installs_nothing_without_the_opt_in(fake_root) -> None:
    done = make(fake_root, "test-tools", "CHROMIUM=phishguard-no-such-chromium")
    assert done.returncode == 0, done.stderr
    assert "apt-get" not in calls(fake_root)
    assert "SKIPPED" in done.stderr and "tests/serving/test_ui_page.py" in done.stderr
    assert "PHISHGUARD_INSTALL_SYSTEM_PACKAGES=1" in done.stderr


def test_make_test_tools_installs_chromium_with_apt_only_when_asked(fake_root) -> None:
    done = make(
        fake_root,
        "test-tools",
        "CHROMIUM=phishguard-no-such-chromium",
        PHISHGUARD_INSTALL_SYSTEM_PACKAGES="1",
    )
    assert done.returncode == 0, done.stderr
    assert "apt-get install -y -qq chromium" in calls(fake_root)


def test_ci_opts_in_to_system_packages_and_names_test_files_that_exist() -> None:
    script = (REPO / ".ci" / "run").read_text()
    assert "export PHISHGUARD_INSTALL_SYSTEM_PACKAGES=1" in script
    named = [word.strip(".,;:()`'\"") for word in script.split() if "tests/" in word]
    assert named, "the CI script names the fresh-machine test"
    for path in named:
        assert (REPO / path).exists(), f".ci/run names {path}, which does not exist"


def test_the_makefile_declares_the_opt_in_once_with_its_default() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert makefile.count("PHISHGUARD_INSTALL_SYSTEM_PACKAGES ?= 0") == 1


def test_without_chromium_the_browser_test_is_skipped_saying_how_to_get_it(monkeypatch) -> None:
    from tests.support import browser

    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        browser.require_chromium()
    message = str(skipped.value)
    assert message.startswith("BROWSER TEST SKIPPED")
    assert "apt-get install chromium" in message
    assert "PHISHGUARD_INSTALL_SYSTEM_PACKAGES=1" in message
