"""dvc.yaml is the architecture: every module a stage imports is one of its deps."""

import ast
from pathlib import Path

import pytest
import yaml

from tests.support import REPO

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def module_file(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] != "phishguard":
        return None
    base = REPO / "src" / Path(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def imported_files(script: Path) -> set[Path]:
    """Every project file `script` imports, transitively, including imports inside functions."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                parts = name.split(".")
                # importing phishguard.x also runs phishguard/__init__.py
                for i in range(1, len(parts) + 1):
                    found = module_file(".".join(parts[:i]))
                    if found is not None:
                        todo.append(found)
    return seen


@pytest.mark.parametrize(
    "stage", sorted(n for n, s in STAGES.items() if s["cmd"].startswith("python "))
)
def test_stage_deps_list_exactly_the_modules_it_imports(stage):
    spec = STAGES[stage]
    script = REPO / spec["cmd"].split()[1]
    code_deps = {REPO / d for d in spec["deps"] if d.endswith(".py")}
    imported = imported_files(script)
    missing = sorted(str(p.relative_to(REPO)) for p in imported - code_deps)
    stale = sorted(str(p.relative_to(REPO)) for p in code_deps - imported)
    assert not missing, f"{stage} imports modules missing from its deps: {missing}"
    assert not stale, f"{stage} lists deps it never imports: {stale}"


def test_metrics_and_plots_are_declared():
    evaluate = STAGES["evaluate"]
    assert any("reports/metrics.json" in m for m in evaluate["metrics"])
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    targets = {f for plot in plots for spec in plot.values() for f in spec["y"]}
    assert targets == {
        "reports/plots/roc.json",
        "reports/plots/precision_recall.json",
        "reports/plots/confusion.csv",
        "reports/plots/calibration.json",
        "reports/plots/drift_reference.csv",
        "reports/plots/drift_current.csv",
    }
