"""The GitHub workflows are valid YAML with the triggers, jobs and steps they promise."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.support import REPO

WORKFLOWS = REPO / ".github" / "workflows"


def _load(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(document, dict), f"{name}: not a mapping"
    # PyYAML reads the bare key `on` as True (YAML 1.1); GitHub reads it as "on".
    if True in document:
        document["on"] = document.pop(True)
    return document


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def _uses(job: dict) -> list[str]:
    return [step["uses"] for step in job["steps"] if "uses" in step]


@pytest.mark.parametrize("name", ["ci.yml", "cml.yml", "retrain.yml"])
def test_workflow_structure(name: str) -> None:
    workflow = _load(name)
    assert {"name", "on", "jobs"} <= set(workflow)
    assert workflow["jobs"], "no jobs"
    for job_name, job in workflow["jobs"].items():
        assert job["runs-on"], job_name
        assert isinstance(job["steps"], list) and job["steps"], job_name
        for step in job["steps"]:
            assert ("run" in step) != ("uses" in step), f"{job_name}: step needs run xor uses"
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[\w.-]+", step["uses"]), step["uses"]
        checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
        assert checkout["with"]["fetch-depth"] == 0, "shallow clones break dvc diffs"


def test_ci_runs_the_readme_test_command_on_push_and_pull_request() -> None:
    workflow = _load("ci.yml")
    assert "pull_request" in workflow["on"] and "push" in workflow["on"]
    (job,) = workflow["jobs"].values()
    commands = _runs(job)
    assert "make test" in commands and "make lint" in commands
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme, "the README must name the test command CI runs"


def test_cml_posts_diffs_and_plots_on_pull_requests() -> None:
    workflow = _load("cml.yml")
    assert "pull_request" in workflow["on"]
    assert workflow["permissions"]["pull-requests"] == "write"
    (job,) = workflow["jobs"].values()
    assert any(u.startswith("iterative/setup-cml@") for u in _uses(job))
    commands = _runs(job)
    assert "dvc repro" in commands and "dvc push" in commands
    assert "make report BASELINE=main" in commands
    assert re.search(r"cml comment update --watermark-title=\S+.* reports/report\.md", commands)
    # Credentials come from secrets, never from the file.
    assert workflow["env"]["AWS_ACCESS_KEY_ID"] == "${{ secrets.AWS_ACCESS_KEY_ID }}"
    assert "${{ secrets.AWS_SECRET_ACCESS_KEY }}" in workflow["env"]["AWS_SECRET_ACCESS_KEY"]
    text = (WORKFLOWS / "cml.yml").read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)


def test_make_report_builds_with_the_diff_the_workflow_uses() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^report:", makefile, re.MULTILINE)
    assert "phishguard.modeling.report --baseline" in makefile
    assert (REPO / "src/phishguard/modeling/report.py").is_file()


def test_retrain_runs_the_loop_weekly_and_opens_a_pull_request_for_a_person() -> None:
    """retrain.yml (issue 13): pull the champion, land base + feedback, repro, push, and a pull
    request whose body is the report; every credential from secrets."""
    workflow = _load("retrain.yml")
    assert "workflow_dispatch" in workflow["on"]
    (schedule,) = workflow["on"]["schedule"]
    assert len(schedule["cron"].split()) == 5
    assert workflow["permissions"] == {"contents": "write", "pull-requests": "write"}
    (job,) = workflow["jobs"].values()
    assert any(u.startswith("astral-sh/setup-uv@") for u in _uses(job))
    assert any(u.startswith("iterative/setup-cml@") for u in _uses(job))
    commands = _runs(job)
    order = [
        "dvc pull",
        "phishguard fetch",
        "dvc repro",
        "dvc push",
        "make report",
        "cml pr create",
    ]
    positions = [commands.index(command) for command in order]
    assert positions == sorted(positions), "the loop's steps run in this order"
    assert "phishguard.modeling.promotion" in commands  # the decision is printed
    assert '--body "$(cat reports/report.md)"' in commands
    assert "--publish" not in commands, "no upload of the plots to a public host"
    fetch = next(step for step in job["steps"] if "phishguard fetch" in step.get("run", ""))
    assert fetch["env"]["MONGODB_URI"] == "${{ secrets.MONGODB_URI }}"
    assert workflow["env"]["AWS_ACCESS_KEY_ID"] == "${{ secrets.AWS_ACCESS_KEY_ID }}"
    assert workflow["env"]["AWS_SECRET_ACCESS_KEY"] == "${{ secrets.AWS_SECRET_ACCESS_KEY }}"
    text = (WORKFLOWS / "retrain.yml").read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}|mongodb(\+srv)?://", text), "a credential inline"


def test_make_retrain_is_the_same_loop_and_listed_in_make_help() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^retrain:.*## (.+)\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "a documented `retrain` target (make help)"
    steps = recipe.group(2)
    for command in ("phishguard fetch", "dvc repro", "phishguard.modeling.promotion", "report"):
        assert command in steps
