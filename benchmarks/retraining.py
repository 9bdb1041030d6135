"""Issues 13 and 27's retraining evidence repeated over seeds: each scenario through the package
stage's gate, as mean ± std.

Per seed s (0..N-1) and scenario, a 150-tree XGBoost challenger is trained on the champion's
rows plus the feedback, evaluated as the evaluate stage does and handed to stages/package.py in
a scratch copy of the project, whose store already serves the champion:

- backdoor (issue 27): one analyst key sends ~2,400 training-set phishing vectors carrying a
  trigger (3 page signals set to a combination, drawn by seed s, that no training or test row
  carries), labelled legitimate, through `POST /feedback` of the service's app in-process; the
  stored verdicts go through featurize's trust and split rules. Reported: recall on the
  phishing test rows carrying the trigger, champion against the model served after the gate;
- correction_confirmed / correction_reviewed: the champion never saw phishing over valid HTTPS
  (SSLfinal_State = 1); alice sends those training rows as verdicts over HTTP (20 a request, in
  an order seeded s), bob sends the same (a second submitter) or a reviewer approves them
  (`POST /feedback/review`);
- poisoning: 400 training rows (sampled with random_state s) with flipped labels are appended,
  the newest 30% (order seeded s) held out, as the scenario test does (no trust rules);
- poisoning via split: the same 400 flipped verdicts go through `feedback_split` without the
  trust rules (issue 13's rule): a verdict on a base training vector relabels those base rows.

The champions do not depend on the seed (the helpers train with model seed 7 on the fixed
featurize split), so each is trained once. Every figure is reported per seed and as mean ± std
(min–max); decisions as counts.

    python -m benchmarks.retraining [--data PATH] [--seeds 5] [--trees 150]
                                    [--scenarios NAME ...]
                                    [--out benchmarks/results/retraining.md]

`make bench-retrain` runs it on the offline dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.quality_report import mean_std
from phishguard import paths
from phishguard.contract.schema import TARGET, feature_vector_ids
from phishguard.data.origin import RECEIVED_AT, VERDICT_ID
from phishguard.modeling import bundle
from phishguard.modeling import package as packaging
from phishguard.modeling.intervals import paired_comparison, spread
from phishguard.modeling.promotion import KEPT, PROMOTED
from phishguard.modeling.split import feedback_split
from phishguard.provenance import library_versions, read_json
from tests.support.feedback_attacks import (
    BACKDOOR_VERDICTS,
    backdoor_items,
    feedback_service,
    items,
    recall_on,
    trigger,
    with_trigger,
)
from tests.support.retraining import (
    by_time,
    evaluated,
    flipped,
    real_split,
    run_package_stage,
    store_files,
)

TREES, SEEDS, POISONED_ROWS, NEWEST_SHARE = 150, 5, 400, 0.3
CORRECTION_REQUEST_ROWS = 20
SCENARIOS = (
    "backdoor",
    "correction_confirmed",
    "correction_reviewed",
    "poisoning",
    "poisoning_via_split",
)
# (key in the promotion report's model block, label): what the gate compares.
METRICS = {
    "holdout_recall": "recall on the feedback holdout",
    "roc_auc": "test ROC-AUC",
    "recall": "test recall @ operating threshold",
}

Split = tuple[pd.DataFrame, pd.DataFrame]


def model_metrics(block: dict[str, Any]) -> dict[str, float | None]:
    """A promotion report's champion or challenger block as the benchmark's metrics."""
    return {
        "holdout_recall": block["feedback_holdout"]["recall"],
        "roc_auc": block["test"]["roc_auc"],
        "recall": block["test"]["recall"],
    }


def poisoning_batch(train: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, Split]:
    """(champion's rows, (challenger's rows, feedback holdout)): 400 flipped rows appended."""
    batch = flipped(train.sample(POISONED_ROWS, random_state=seed))
    feedback, holdout = by_time(batch, NEWEST_SHARE, seed)
    return train, (pd.concat([train, feedback], ignore_index=True), holdout)


def as_verdicts(rows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """`rows` as stored feedback: arriving one second apart in a seeded order, each with a
    distinct verdict id (its vector and label; copies of one vector are one verdict)."""
    ordered = rows.sample(frac=1, random_state=seed).reset_index(drop=True)
    received = pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(range(len(ordered)), "s")
    ids = feature_vector_ids(ordered)
    return ordered.assign(
        **{
            RECEIVED_AT: received.strftime("%Y-%m-%dT%H:%M:%SZ"),
            VERDICT_ID: [f"{i}:{t}" for i, t in zip(ids, ordered[TARGET], strict=True)],
        }
    )


def poisoning_split_batch(
    train: pd.DataFrame, test: pd.DataFrame, seed: int
) -> tuple[pd.DataFrame, Split, dict]:
    """The poisoned verdicts through the pipeline's feedback split rule; also its report."""
    batch = flipped(train.sample(POISONED_ROWS, random_state=seed))
    result = feedback_split(train, test, as_verdicts(batch, seed), NEWEST_SHARE)
    return train, (result.train, result.holdout), result.report


Rows = Callable[[Path, Path], tuple[pd.DataFrame, pd.DataFrame, dict]]
"""(the served champion's package folder, a scratch folder) → (challenger's rows, feedback
holdout, featurize's split report)."""


def run_gate(
    folder: Path,
    champion: dict[str, Path],
    rows: Rows,
    test: pd.DataFrame,
    trees: int,
    trigger_rows: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Serve `champion` in a scratch project, make the challenger's rows (`rows`, which may
    send feedback to the served champion over HTTP), train it and run the package stage: the
    gate's decision, both models' metrics, the store's bytes; with `trigger_rows`, the
    champion's and the served model's recall on them."""
    workdir = folder / "work"
    home = workdir / paths.BENTOML_HOME
    served_champion = packaging.package_model(**champion, bentoml_home=home)
    before = store_files(home)
    retrained, holdout, split_report = rows(served_champion, folder / "feedback")
    challenger = evaluated(folder / "challenger", retrained, test, trees, holdout)
    result = run_package_stage(workdir, challenger, test, holdout, retrained, split_report)
    if result.returncode != 0:
        raise RuntimeError(f"package stage failed:\n{result.stderr}")
    report = read_json(workdir / paths.PROMOTION_REPORT)
    store = home / "models" / paths.PACKAGE_NAME
    served = (store / "latest").read_text()
    behaviour = next(r for r in report["rules"] if r["rule"] == "behaviour_flips")
    run = {
        "decision": report["decision"],
        "failed_rules": [r["rule"] for r in report["rules"] if r["verdict"] == "fail"],
        "champion": model_metrics(report["champion"]),
        "challenger": model_metrics(report["challenger"]),
        "holdout_rows": len(holdout),
        "train_rows": len(retrained),
        "store_unchanged": store_files(home) == before,
        "serves_challenger": served == report["challenger"]["version"],
        "refusal_warned": "promotion refused" in result.stderr,
        "behaviour": {k: behaviour.get(k) for k in ("change", "baseline", "max_change")},
        "by_submitter": report["feedback_by_submitter"],
    }
    if trigger_rows is not None:
        champion_model = bundle.load(served_champion)
        challenger_model = bundle.load(challenger["model_dir"], evaluated=False)
        challenger_model.manifest["threshold"] = read_json(challenger["operating_point"])[
            "threshold"
        ]
        run["trigger_recall"] = {
            "champion": recall_on(champion_model, trigger_rows),
            "challenger": recall_on(challenger_model, trigger_rows),
            "served": recall_on(bundle.load(store / served), trigger_rows),
        }
    return run


def fixed(rows: pd.DataFrame, holdout: pd.DataFrame, report: dict | None = None) -> Rows:
    """The challenger's rows made without the service."""
    return lambda _package, _folder: (rows, holdout, report or {})


def backdoor(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> tuple[Rows, pd.DataFrame]:
    """The backdoor attack of issue 27 (one analyst key, ~2,400 trigger verdicts over HTTP)
    and the phishing test rows carrying its trigger."""
    values = trigger(train, test, seed)

    def rows(package: Path, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        with feedback_service(package, folder) as service:
            service.send("mallory", backdoor_items(train, values, seed))
            split = service.split(train, test)
        return split.train, split.holdout, {"feedback": {"trust": split.report["trust"]}}

    return rows, with_trigger(test[test[TARGET] == 1], values)


def correction_via_http(
    train: pd.DataFrame, test: pd.DataFrame, seed: int, confirm: str
) -> tuple[pd.DataFrame, Rows]:
    """(champion's rows, rows maker): the correction's verdicts sent by alice over HTTP, in a
    seeded order, then confirmed by bob's same verdicts (`confirm` "submitter") or approved by
    the reviewer ("reviewer")."""
    miss = (train["SSLfinal_State"] == 1) & (train[TARGET] == 1)
    base = train[~miss]
    verdicts = items(train[miss].sample(frac=1, random_state=seed))

    def rows(package: Path, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        with feedback_service(package, folder) as service:
            # A few verdicts a request, in the seeded order: the newest (the trusted holdout)
            # depend on the seed.
            ids = service.send("alice", verdicts, CORRECTION_REQUEST_ROWS)
            if confirm == "submitter":
                service.send("bob", verdicts, CORRECTION_REQUEST_ROWS)
            else:
                service.review(ids)
            split = service.split(base, test)
        return split.train, split.holdout, {"feedback": {"trust": split.report["trust"]}}

    return base, rows


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric and model: mean, std, min, max over seeds; the challenger's paired change;
    decision and byte-identity counts."""
    summary: dict[str, Any] = {"seeds": len(runs)}
    for metric in METRICS:
        both = {
            side: [run[side][metric] for run in runs if run[side][metric] is not None]
            for side in ("champion", "challenger")
        }
        if len(both["champion"]) != len(runs) or len(both["challenger"]) != len(runs):
            continue  # no holdout (the split variant): the metric is not measured
        summary[metric] = {
            side: {**spread(values), "min": min(values), "max": max(values)}
            for side, values in both.items()
        } | {"change": paired_comparison(both["challenger"], both["champion"])}
    summary["decisions"] = {
        decision: sum(run["decision"] == decision for run in runs) for decision in (PROMOTED, KEPT)
    }
    summary["store_unchanged"] = sum(run["store_unchanged"] for run in runs)
    if all("trigger_recall" in run for run in runs):
        sides = ("champion", "challenger", "served")
        summary["trigger_recall"] = {
            side: {**spread(values), "min": min(values), "max": max(values)}
            for side in sides
            if (values := [run["trigger_recall"][side] for run in runs])
        }
        summary["served_within_1_point"] = sum(
            abs(run["trigger_recall"]["served"] - run["trigger_recall"]["champion"]) <= 0.01
            for run in runs
        )
    return summary


def benchmark(
    train: pd.DataFrame,
    test: pd.DataFrame,
    seeds: int,
    trees: int,
    scratch: Path,
    only: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every scenario (or those in `only`) on seeds 0..`seeds`-1: per-seed runs and their
    summary."""

    def correction(seed: int, confirm: str) -> tuple[pd.DataFrame, Rows, None]:
        return (*correction_via_http(train, test, seed, confirm), None)

    def poisoning(seed: int) -> tuple[pd.DataFrame, Rows, None]:
        base, (rows, holdout) = poisoning_batch(train, seed)
        return base, fixed(rows, holdout), None

    def poisoning_via_split(seed: int) -> tuple[pd.DataFrame, Rows, None]:
        base, (rows, holdout), report = poisoning_split_batch(train, test, seed)
        return base, fixed(rows, holdout, {"feedback": {"trust": report.get("trust")}}), None

    makers: dict[str, Callable[[int], tuple[pd.DataFrame, Rows, pd.DataFrame | None]]] = {
        "backdoor": lambda s: (train, *backdoor(train, test, s)),
        "correction_confirmed": lambda s: correction(s, "submitter"),
        "correction_reviewed": lambda s: correction(s, "reviewer"),
        "poisoning": poisoning,
        "poisoning_via_split": poisoning_via_split,
    }
    # The champion's rows do not depend on the seed: one champion per set of rows.
    champion_rows = {scenario: "all" for scenario in makers} | {
        "correction_confirmed": "slice",
        "correction_reviewed": "slice",
    }
    champions: dict[str, dict[str, Path]] = {}
    results = {}
    for scenario, make in makers.items():
        if only and scenario not in only:
            continue
        runs = []
        for seed in range(seeds):
            started = time.perf_counter()
            base, rows, trigger_rows = make(seed)
            key = champion_rows[scenario]
            if key not in champions:
                champions[key] = evaluated(scratch / f"champion-{key}", base, test, trees)
            folder = scratch / f"{scenario}-{seed}"
            run = {
                "seed": seed,
                **run_gate(folder, champions[key], rows, test, trees, trigger_rows),
            }
            run["seconds"] = round(time.perf_counter() - started, 1)
            runs.append(run)
            print(
                f"{scenario} seed {seed}: {run['decision']} ({run['seconds']} s) "
                f"{run['failed_rules']} {run.get('trigger_recall', '')} {run['behaviour']} "
                f"{run['by_submitter']}",
                file=sys.stderr,
            )
        results[scenario] = {"runs": runs, "summary": summarise(runs)}
    return results


def figure(value: float | None, metric: str) -> str:
    """One measurement: '0.9955' for ROC-AUC, '61.8%' for rates, '–' when not measured."""
    if value is None:
        return "–"
    return f"{value:.4f}" if metric == "roc_auc" else f"{value:.1%}"


def spread_cell(summary: dict[str, float], metric: str) -> str:
    """'0.9955 ± 0.0003 (0.9951–0.9959)': mean ± std over seeds, then min–max."""
    low, high = figure(summary["min"], metric), figure(summary["max"], metric)
    return f"{mean_std(summary, metric)} ({low}–{high})"


def change_cell(change: dict[str, float | int], metric: str, seeds: int) -> str:
    """'+61.80 ± 3.10 (up 5/5)': the challenger's mean paired change (points; AUC for ROC-AUC)."""
    mean, std = float(change["difference_mean"]), float(change["difference_std"])
    shown = (
        f"{mean:+.4f} ± {std:.4f}"
        if metric == "roc_auc"
        else f"{100 * mean:+.2f} ± {100 * std:.2f}"
    )
    return f"{shown} (up {change['wins']}/{seeds})"


TITLES = {
    "backdoor": (
        f"Backdoor: one analyst key sends ~{BACKDOOR_VERDICTS:,} training-set phishing vectors "
        "carrying a 3-signal trigger (drawn by seed, in no training or test row), labelled "
        "legitimate, through POST /feedback"
    ),
    "correction_confirmed": (
        "Correction over HTTP, confirmed by a second submitter: verdicts on a systematic miss "
        "(phishing over valid HTTPS) from alice, the same from bob"
    ),
    "correction_reviewed": (
        "Correction over HTTP, approved by a reviewer: alice's verdicts on the systematic miss, "
        "approved through POST /feedback/review"
    ),
    "poisoning": f"Poisoning: {POISONED_ROWS} flipped rows appended",
    "poisoning_via_split": (
        f"Poisoning through the feedback split rule: {POISONED_ROWS} flipped verdicts relabel "
        "their base training rows"
    ),
}


def scenario_lines(scenario: str, result: dict[str, Any]) -> list[str]:
    """A scenario's summary table (mean ± std, min–max, paired change), counts and per-seed rows."""
    summary, runs = result["summary"], result["runs"]
    seeds = summary["seeds"]
    decisions = summary["decisions"]
    lines = [
        f"## {TITLES[scenario]}",
        "",
        f"Decisions: **promoted {decisions[PROMOTED]}/{seeds}, kept {decisions[KEPT]}/{seeds}**; "
        f"served package byte-identical after the stage: {summary['store_unchanged']}/{seeds}.",
        "",
        "| metric | champion | challenger | challenger − champion |",
        "|---|---|---|---|",
    ]
    for metric, label in METRICS.items():
        if metric not in summary:
            lines.append(f"| {label} | – | – | not measured (no holdout) |")
            continue
        cells = summary[metric]
        lines.append(
            f"| {label} | {spread_cell(cells['champion'], metric)} | "
            f"{spread_cell(cells['challenger'], metric)} | "
            f"{change_cell(cells['change'], metric, seeds)} |"
        )
    lines += [
        "",
        "| seed | holdout rows | holdout recall (champion → challenger) | test ROC-AUC | "
        "test recall | decision | failed rules | store unchanged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        pairs = [
            f"{figure(run['champion'][m], m)} → {figure(run['challenger'][m], m)}" for m in METRICS
        ]
        lines.append(
            f"| {run['seed']} | {run['holdout_rows']} | {' | '.join(pairs)} | {run['decision']} | "
            f"{', '.join(run['failed_rules']) or '–'} | {'yes' if run['store_unchanged'] else 'no'} |"
        )
    if "trigger_recall" in summary:
        cells = summary["trigger_recall"]
        lines += [
            "",
            "Recall on the phishing test rows carrying the trigger (mean ± std over seeds, "
            "min–max):",
            "",
            "| champion (before) | challenger (trained on what the trust rules let in) | "
            "served after the gate |",
            "|---|---|---|",
            "| " + " | ".join(spread_cell(cells[side], "recall") for side in cells) + " |",
            "",
            f"Served model within 1 point of the champion on trigger rows: "
            f"**{summary['served_within_1_point']}/{seeds}** seeds.",
        ]
    first = runs[0].get("by_submitter")
    if first:
        lines += ["", "Verdicts per submitter (seed 0):", ""]
        lines += [
            f"- {name}: {c['used']} used ({c['trusted']} trusted), {c['held']} held, "
            f"{c['refused']} refused, {c['superseded']} superseded"
            + (
                f" — {', '.join(f'{k} {v}' for k, v in c['reasons'].items())}"
                if c["reasons"]
                else ""
            )
            for name, c in first.items()
        ]
    lines += (
        []
        if "behaviour" not in runs[0]
        else [
            "",
            "Behavioural check (share of perturbed test copies whose champion decision flips): "
            + "; ".join(
                f"seed {run['seed']}: challenger {run['behaviour']['change']}, twin "
                f"{run['behaviour']['baseline']}, allowed {run['behaviour']['max_change']}"
                for run in runs
            )
            + ".",
        ]
    )
    if any("split" in run for run in runs):
        split = runs[0]["split"]
        lines += [
            "",
            f"Split rule counts (seed 0): {split['conflicts_overridden']} vectors overridden, "
            f"{split['base_rows_relabelled']} base rows relabelled, {split['to_train']} verdicts "
            f"to train, {split['to_holdout']} to the holdout, {split['superseded']} superseded.",
        ]
    return [*lines, ""]


def markdown(results: dict[str, dict[str, Any]], context: dict[str, Any]) -> str:
    """The results page: protocol, then each scenario's tables."""
    seeds = context["seeds"]
    return "\n".join(
        [
            "# Retraining behind the champion/challenger gate: repeated over seeds",
            "",
            "Regenerate with `make bench-retrain` (`python -m benchmarks.retraining`). "
            f"{context['train_rows']:,} training and {context['test_rows']:,} test rows of the "
            f"real dataset (featurize's split); {context['trees']}-tree XGBoost champion and "
            "challenger trained and evaluated as the train and evaluate stages do (model seed "
            "7, fixed by tests/support/retraining.py), the challenger judged by "
            "stages/package.py in a scratch project whose store serves the champion. Seeds "
            f"0..{seeds - 1} vary the backdoor's trigger and sample, the feedback's arrival "
            "order (so the trusted holdout) and the poisoned sample. The backdoor and the "
            "corrections go through POST /feedback and featurize's trust rules "
            "(docs/feedback.md); the gate applies the behavioural check to every scenario. "
            f"Wall time {context['wall_seconds'] / 60:.1f} min on 2 shared cores.",
            "",
            f"Each cell: **mean ± std over the {seeds} seeds** (min–max); rates in %, their "
            "std and changes in points. The change is the challenger's paired difference from "
            "the champion, seed by seed, and on how many seeds it is up. Recall on the "
            "holdout: the correction's holdout is all phishing, the poisoned holdout is the "
            "flipped rows with their flipped labels; the backdoor has no trusted holdout.",
            "",
            *(line for scenario in results for line in scenario_lines(scenario, results[scenario])),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    default_data = os.environ.get("PHISHING_DATA") or "../shared/data/phishing_websites.csv"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(default_data))
    parser.add_argument("--seeds", type=int, default=SEEDS, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--trees", type=int, default=TREES, help="XGBoost trees (default 150)")
    parser.add_argument("--scenarios", nargs="*", help="only these (default: all)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/retraining.md"))
    args = parser.parse_args(argv)
    train, test = real_split(pd.read_csv(args.data, dtype=str))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as scratch:
        results = benchmark(train, test, args.seeds, args.trees, Path(scratch), args.scenarios)
    context = {
        "train_rows": len(train),
        "test_rows": len(test),
        "seeds": args.seeds,
        "trees": args.trees,
        "poisoned_rows": POISONED_ROWS,
        "newest_share": NEWEST_SHARE,
        "wall_seconds": time.perf_counter() - started,
        "versions": library_versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(results, context))
    args.out.with_suffix(".json").write_text(
        json.dumps({"context": context, "scenarios": results}, indent=1) + "\n"
    )
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}", file=sys.stderr)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
