"""The README is a door and its examples run as written (issue 29, item 5).

Every shell block in README.md and docs/*.md carries a marker (docs/README.md: `<!-- tested:
FILE::TEST -->` or `<!-- illustrative -->`). The tested ones are run here, read from the
README itself: the card's commands in a copy of a finished pipeline clone, the curl examples
against a real `bentoml serve` on 127.0.0.1, and `phishguard predict` on a generated CSV. The
set-up commands are the ones the fresh-machine test and CI run."""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from phishguard import cli
from phishguard.contract.schema import FEATURES
from tests.support import REPO, VENV_BIN, free_port, run_tool, synthetic_rows, tool_env
from tests.support.docs import (
    ILLUSTRATIVE,
    README,
    TESTED,
    commands,
    documentation_pages,
    section_block,
    section_blocks,
    shell_blocks,
)
from tests.support.service import spawn, stop, wait_ready

MAX_README_LINES = 300
CARD = "The card's commands"
_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def test_every_shell_example_is_tested_or_illustrative() -> None:
    unmarked, dangling = [], []
    for page in documentation_pages():
        for block in shell_blocks(page):
            tested = TESTED.fullmatch(block.marker)
            if tested is None:
                if block.marker != ILLUSTRATIVE:
                    unmarked.append(f"{block.where}: {block.text.splitlines()[0]}")
                continue
            test_file = REPO / tested["file"]
            defined = test_file.is_file() and re.search(
                rf"^def {tested['test']}\(", test_file.read_text(encoding="utf-8"), re.M
            )
            if not defined:
                dangling.append(f"{block.where}: {tested['file']}::{tested['test']} not found")
    assert not unmarked, (
        "examples neither marked <!-- illustrative --> nor <!-- tested: FILE::TEST --> "
        "(see docs/README.md):\n" + "\n".join(unmarked)
    )
    assert not dangling, "\n".join(dangling)


def test_the_marker_convention_is_documented() -> None:
    guide = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    assert ILLUSTRATIVE in guide and "<!-- tested: " in guide


def test_readme_is_at_most_300_lines() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES})"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in documentation_pages():
        for link in _LINK.finditer(page.read_text(encoding="utf-8")):
            target = link["target"]
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_readme_links_every_docs_page() -> None:
    readme = README.read_text(encoding="utf-8")
    linked = {m["target"] for m in _LINK.finditer(readme)}
    pages = {f"docs/{page.name}" for page in (REPO / "docs").glob("*.md")}
    assert pages <= linked, f"not in the README's map of docs/: {sorted(pages - linked)}"


def _code(page: Path) -> str:
    """The page's inline code spans and code blocks, one per line."""
    text = page.read_text(encoding="utf-8")
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return "\n".join([*blocks, *spans])


def _command_names(parser: argparse.ArgumentParser, prefix: str) -> set[str]:
    """`prefix`, then each (nested) subcommand of `parser`: {"phishguard", "phishguard keys",
    "phishguard keys add", …}."""
    names = {prefix}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                names |= _command_names(sub, f"{prefix} {name}")
    return names


def test_every_make_target_and_phishguard_command_shown_exists() -> None:
    """A `make X` or `phishguard X [Y]` that starts a command in the docs' code is a real
    Makefile target or CLI (sub)command."""
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    known = _command_names(cli.parser(), "phishguard")
    unknown = []
    for page in documentation_pages():
        for line in _code(page).splitlines():
            for command in re.split(r"&&|;|\|", re.sub(r"^\w+=\S+ ", "", line.strip())):
                words = [w for w in command.split() if re.fullmatch(r"[a-z][\w-]*", w)]
                if command.split()[:1] == ["make"] and len(words) > 1:
                    if words[1] not in targets:
                        unknown.append(f"{page.name}: {command.strip()}")
                elif command.split()[:1] == ["phishguard"] and len(words) > 1:
                    name = " ".join(words[:2])
                    nested = any(k.startswith(f"{name} ") for k in known)
                    if name not in known or (nested and " ".join(words[:3]) not in known):
                        unknown.append(f"{page.name}: {command.strip()}")
    assert not unknown, "\n".join(unknown)


def test_every_repository_path_named_in_code_exists() -> None:
    """A path under the repository's source folders quoted in the docs' code names a file or
    folder git tracks (outputs under data/, models/ and reports/ are the pipeline's)."""
    folders = "tests|src|stages|conf|service|benchmarks|docs|\\.github|\\.ci"
    files = run_tool(["git", "ls-files"], REPO).stdout.split()
    tracked = {str(parent) for file in files for parent in [Path(file), *Path(file).parents]}
    missing = []
    for page in documentation_pages():
        for path in re.findall(rf"(?<![\w./])((?:{folders})/[\w./-]*\w)(?![\w./{{-])", _code(page)):
            if "*" not in path and path not in tracked:
                missing.append(f"{page.name}: {path}")
    assert not missing, "\n".join(sorted(set(missing)))


def _sh_commands(test_file: Path) -> list[str]:
    """The literal scripts a test module hands to its `sh(script, …)` helper."""
    tree = ast.parse(test_file.read_text(encoding="utf-8"))
    return [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "sh"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]


def test_readme_set_up_commands_are_the_fresh_machine_tests() -> None:
    """`make pipeline` is what tests/e2e/test_fresh_machine.py runs in a fresh clone on a
    simulated fresh machine; `make test` is what CI (.ci/run) runs on a clean clone."""
    assert commands(section_block("Set up")) == ["make pipeline", "make test"]
    assert "make pipeline" in _sh_commands(REPO / "tests" / "e2e" / "test_fresh_machine.py")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test\b", ci, re.M), ".ci/run no longer runs `make test`"


# --- the examples, run (slow: a finished pipeline clone and a real server) ---


def _private_copy(pipeline_clone: Path, destination: Path) -> Path:
    """A copy of the finished pipeline clone with this checkout's venv as its `.venv`, so the
    README's `source .venv/bin/activate` works in it."""
    copy = Path(shutil.copytree(pipeline_clone, destination, symlinks=True))
    (copy / ".venv").symlink_to(VENV_BIN.parent, target_is_directory=True)
    return copy


def _bash(script: str, cwd: Path, **env: str) -> str:
    """Run `script` with bash in `cwd` (the project's tool environment, the copy's model
    store); its output, or fail with it."""
    env.setdefault("BENTOML_HOME", str(cwd / "models" / "bentoml"))
    done = run_tool(["/bin/bash", "-c", script], cwd, **env)
    return done.stdout + done.stderr


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.mark.e2e
def test_readme_card_commands_run_as_typed(pipeline_clone: Path, tmp_path: Path) -> None:
    """Each of the card's commands, as the README types it, in a copy of a finished pipeline
    (`bentoml serve` is run by the curl test's server)."""
    lines = commands(section_block(CARD))
    activate, serve = lines[0], lines[-1]
    assert activate == "source .venv/bin/activate" and serve.startswith("bentoml serve")
    workdir = _private_copy(pipeline_clone, tmp_path / "card")
    # `make report` must not re-sync the environment: in this copy `.venv` is the suite's own.
    assert "uv sync" not in _bash("make -n report", workdir), "run `make install` first"
    for command in lines[1:-1]:
        output = _bash(f"{activate} && {command}", workdir, COLUMNS="160")
        if command == "dvc repro":
            assert _ran(output) == [], output
        elif command.startswith("dvc exp run"):
            assert _ran(output)[:1] == ["train"], output
            assert not {"ingest", "validate", "featurize"} & set(_ran(output)), output
        elif command.startswith(("dvc exp show", "make compare")):
            # Readable in a 160-column terminal: the changed parameter and the headline metrics.
            assert max(map(len, output.splitlines())) <= 160, output
            for column in ("model.max_depth", "accuracy", "roc_auc"):
                assert column in output, output
        elif command.startswith("make report"):
            assert "reports/report.md" in output
            assert "ROC" in (workdir / "reports" / "report.md").read_text(encoding="utf-8")
        else:
            pytest.fail(f"the card has a command this test does not check: {command}")


@pytest.fixture(scope="module")
def readme_server(pipeline_clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The card's `bentoml serve`, as typed, on 127.0.0.1 and a free port, from a copy of a
    finished pipeline clone; yields the port."""
    serve = commands(section_block(CARD))[-1]
    folder = tmp_path_factory.mktemp("readme_server")
    workdir = _private_copy(pipeline_clone, folder / "clone")
    port, log = free_port(), folder / "serve.log"
    script = f"source .venv/bin/activate && exec {serve} --host 127.0.0.1 --port {port}"
    # The service's defaults (PHISHGUARD_AUTH=writes: scoring open), as a user gets them.
    environment = {k: v for k, v in tool_env(workdir).items() if not k.startswith("PHISHGUARD_")}
    environment["BENTOML_HOME"] = str(workdir / "models" / "bentoml")
    environment["PHISHGUARD_PREDICTION_LOG"] = str(folder / "predictions")
    server = spawn(["/bin/bash", "-c", script], workdir, environment, log)
    wait_ready(server, port, log)
    try:
        yield port
    finally:
        stop(server)


def _curl(block_text: str, port: int) -> dict:
    """Run a README curl block against `port` (the README says 3000); its JSON answer."""
    assert "127.0.0.1:3000/" in block_text
    script = block_text.replace("127.0.0.1:3000/", f"127.0.0.1:{port}/")
    done = subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.e2e
def test_readme_curl_example_against_bentoml_serve(readme_server: int) -> None:
    """Both curl blocks of § Score a website paste and answer, with no API key."""
    predict, metadata = section_blocks("Score a website")
    assert "…" not in predict.text and "..." not in predict.text, "a placeholder cannot be pasted"
    record = json.loads(re.search(r"-d '(.*)'", predict.text, re.S)[1])["records"][0]
    assert list(record) == list(FEATURES)
    (result,) = _curl(predict.text, readme_server)["results"]
    assert 0.0 <= result["phishing_probability"] <= 1.0
    assert result["label"] == "legitimate", "the README says this record scores legitimate"
    assert result["prediction_id"]
    answer = _curl(metadata.text, readme_server)
    assert answer["features"] == list(FEATURES) and 0.0 < answer["threshold"] < 1.0


@pytest.mark.e2e
def test_readme_predict_example_scores_a_generated_csv(
    pipeline_clone: Path, tmp_path: Path
) -> None:
    """§ Score a file, as typed, on a generated sites.csv with one bad row: scored + rejected
    = the input rows, into the files the README names."""
    (command,) = commands(section_block("Score a file"))
    rows = synthetic_rows(40, seed=29)
    rows.loc[7, "SFH"] = 5  # out of its domain {-1, 0, 1}
    names = re.findall(r"\S+\.csv", command)
    assert names == ["sites.csv", "scores.csv"], command
    rows.to_csv(tmp_path / "sites.csv", index=False)
    models = pipeline_clone / "models" / "bentoml"
    _bash(command, tmp_path, BENTOML_HOME=str(models), PHISHGUARD_PREDICTION_LOG="off")
    scores = pd.read_csv(tmp_path / "scores.csv")
    rejects = pd.read_csv(tmp_path / "scores.rejects.csv")
    assert list(scores.columns) == ["row", "phishing_probability", "is_phishing", "label"]
    assert len(scores) + len(rejects) == len(rows)
    assert rejects["row"].tolist() == [8] and "SFH" in rejects["reason"][0]


@pytest.mark.e2e
def test_operations_python_client_example(readme_server: int, tmp_path: Path) -> None:
    """docs/operations.md § Python clients, run against the server: SyncHTTPClient scores and
    reads the metadata; a typo posted as plain JSON gets the server's "misspelled?" hint."""
    (block,) = section_blocks("Python clients", REPO / "docs" / "operations.md")
    script = tmp_path / "client.py"
    script.write_text(block.text.replace("127.0.0.1:3000", f"127.0.0.1:{readme_server}"))
    done = run_tool([str(VENV_BIN / "python"), str(script)], tmp_path)
    label, threshold, error = done.stdout.splitlines()
    assert label == "legitimate" and 0.0 < float(threshold) < 1.0
    assert error == "422 record 0: unknown field 'URL_Lenght' (misspelled 'URL_Length'?)"
