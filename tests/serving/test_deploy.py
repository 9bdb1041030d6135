"""The deployment path that cannot run here: the workflow, the bentofile, the ignore list."""

from __future__ import annotations

import yaml

from tests.support import REPO


def test_deploy_workflow_builds_containerizes_and_pushes_to_ecr() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "deploy.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1: on → True
    assert "workflow_dispatch" in triggers
    assert workflow["permissions"]["id-token"] == "write"  # OIDC, no stored AWS keys
    steps = workflow["jobs"]["build-and-push"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("aws-actions/configure-aws-credentials@") for u in uses)
    assert any(u.startswith("aws-actions/amazon-ecr-login@") for u in uses)
    order = [
        "dvc pull",
        "dvc repro --force --single-item package",  # the store is no DVC output (issue 29)
        "bentoml build --label git_revision=",
        "bentoml containerize",
        "docker push",
    ]
    positions = [runs.index(command) for command in order]
    assert positions == sorted(positions)
    assert (
        "AWS_SECRET_ACCESS_KEY" not in (REPO / ".github" / "workflows" / "deploy.yml").read_text()
    )


def test_bentofile_builds_offline_from_the_packaged_model() -> None:
    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    module, _, name = bentofile["service"].partition(":")
    assert (REPO / (module.replace(".", "/") + ".py")).is_file() and name == "Phishguard"
    assert bentofile["python"]["lock_packages"] is False
    assert bentofile["models"] == ["phishguard:latest"]
    assert "src/phishguard/**/*.py" in bentofile["include"]
    ignored = (REPO / ".bentoignore").read_text().split()
    assert "models/" in ignored  # the repo-local BentoML store must never be copied in
