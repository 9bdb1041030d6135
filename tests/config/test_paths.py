"""The stage paths are declared once: `phishguard.paths.STAGES` says what each stage reads and
writes, dvc.yaml declares exactly that, and each stage script uses no other path constant."""

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest
import yaml

from phishguard import paths
from phishguard.modeling.package import package_model
from phishguard.modeling.plot_data import write_plots
from tests.support import REPO

DVC_STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
NOT_A_STAGE_PATH = {
    "ROOT",
    "PARAMS",
    "PACKAGE_NAME",
    "STAGES",
    "StageIO",
    "Path",
    "dataclass",
    "KEYS_FILE",
    "FEEDBACK_DIR",
}


def _entries(items: list) -> set[str]:
    """dvc.yaml's list of deps or outs, as paths (an entry with options is a one-key dict)."""
    return {next(iter(item)) if isinstance(item, dict) else item for item in items}


def _posix(declared: tuple[Path, ...]) -> set[str]:
    return {path.as_posix() for path in declared}


def test_every_dvc_stage_is_declared_in_paths() -> None:
    assert set(paths.STAGES) == set(DVC_STAGES)


@pytest.mark.parametrize("stage", sorted(DVC_STAGES))
def test_dvc_yaml_declares_exactly_the_paths_the_stage_reads_and_writes(stage: str) -> None:
    spec = DVC_STAGES[stage]
    data_deps = {dep for dep in _entries(spec["deps"]) if not dep.endswith(".py")}
    outs = _entries(spec.get("outs", [])) | _entries(spec.get("metrics", []))
    assert data_deps == _posix(paths.STAGES[stage].reads)
    assert outs == _posix(paths.STAGES[stage].writes)


def _within(path: Path, declared: tuple[Path, ...]) -> bool:
    """`path` is a declared path, inside a declared folder, or the folder of declared files."""
    return any(
        path == other or other in path.parents or path in other.parents for other in declared
    )


def _as_tuple(value: Path | tuple[Path, ...]) -> tuple[Path, ...]:
    return value if isinstance(value, tuple) else (value,)


@pytest.mark.parametrize("stage", sorted(DVC_STAGES))
def test_each_stage_script_uses_only_its_declared_paths(stage: str) -> None:
    script = REPO / DVC_STAGES[stage]["cmd"].split()[1]
    used = {
        node.attr
        for node in ast.walk(ast.parse(script.read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "paths"
    }
    io = paths.STAGES[stage]
    declared = io.reads + io.writes + io.unhashed
    strays = sorted(
        name
        for name in used - NOT_A_STAGE_PATH
        for path in _as_tuple(getattr(paths, name))
        if not _within(path, declared)
    )
    assert not strays, f"{script.name} uses paths not declared for {stage}: {strays}"


def test_the_package_stage_reads_and_writes_its_declared_paths() -> None:
    """stages/package.py takes `package_model`'s defaults: they are its declared paths, beside
    the splits the champion/challenger gate scores the served package on, the training rows
    its behavioural check retrains a twin on and the split report (the trust counts)."""
    defaults = {
        p.default
        for p in inspect.signature(package_model).parameters.values()
        if isinstance(p.default, Path)
    }
    io = paths.STAGES["package"]
    gate_reads = {paths.TEST_TABLE, paths.FEEDBACK_HOLDOUT, paths.TRAIN_TABLE, paths.SPLIT_REPORT}
    assert defaults | gate_reads == {*io.reads, paths.BENTOML_HOME}
    assert io.unhashed == (
        paths.BENTOML_HOME / "models" / paths.PACKAGE_NAME,
        paths.PROMOTION_REPORT,
    )
    # Not DVC outputs: the champion they depend on is no pipeline input (issue 29). The one
    # output is the content-derived candidate manifest, so a fresh clone re-runs the stage.
    assert io.writes == (paths.PACKAGE_CANDIDATE,)


def test_the_plot_files_are_the_ones_write_plots_writes(tmp_path: Path) -> None:
    y = np.array([0, 1, 0, 1, 1, 0])
    write_plots(y, np.linspace(0.1, 0.9, len(y)), 0.5, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {p.name for p in paths.PLOT_FILES}
    assert {p.parent for p in paths.PLOT_FILES} == {paths.PLOTS}
