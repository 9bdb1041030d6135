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
    # One small headline file is the DVC metrics (`dvc exp show` stays readable); the detail
    # is a plain output (issue 29).
    assert evaluate["metrics"] == [{"reports/headline.json": {"cache": False}}]
    assert {"reports/metrics.json": {"cache": False}} in evaluate["outs"]
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


def _sections_of_comprehension(node: ast.AST) -> set[str]:
    """`{name: section(name) for name in ("a", "b")}` reads sections a and b."""
    body = ast.Tuple(elts=[getattr(node, "key", node), getattr(node, "value", node)])
    if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp):
        body = node.elt
    called = {
        call.args[0].id
        for call in ast.walk(body)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id in ("load_section", "section")
        and call.args
        and isinstance(call.args[0], ast.Name)
    }
    return {
        element.value
        for generator in node.generators
        if isinstance(generator.target, ast.Name)
        and generator.target.id in called
        and isinstance(generator.iter, ast.Tuple)
        for element in generator.iter.elts
        if isinstance(element, ast.Constant)
    }


def _literal_first(call: ast.Call) -> bool:
    return bool(call.args) and isinstance(call.args[0], ast.Constant)


def sections_read(script: Path) -> set[str]:
    """The params.yaml sections `script` and every project module it imports read: the first
    argument of each `load_section`/`section` call (a literal, or each literal of the tuple a
    comprehension walks), and `model` for each `load_model_config` call (whose own body is
    skipped: it is counted where it is called)."""
    read = set()
    for path in imported_files(script):
        tree = ast.parse(path.read_text())
        skipped = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name == "load_model_config"
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "load_model_config":
                    read.add("model")
                elif node.func.id in ("load_section", "section") and _literal_first(node):
                    read.add(node.args[0].value)
            if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
                read |= _sections_of_comprehension(node)
    return read


@pytest.mark.parametrize(
    "stage", sorted(n for n, s in STAGES.items() if s["cmd"].startswith("python "))
)
def test_stage_params_are_every_whole_section_it_reads(stage):
    """DVC re-runs a stage when a parameter it declares changes: so it must declare every
    section it reads, whole (a key added to a section later is then tracked too)."""
    spec = STAGES[stage]
    declared = set(spec.get("params", []))
    read = sections_read(REPO / spec["cmd"].split()[1])
    assert read, f"{stage} reads no parameters?"
    assert declared == read, f"{stage} declares {sorted(declared)} but reads {sorted(read)}"
