"""Champion/challenger: whether the newly evaluated model replaces the served one.

The challenger is the model evaluate just scored (its metrics are reports/metrics.json); the
champion is the package stage's own persisted output, the package `latest` in
models/bentoml/models/phishguard. The package stage scores the champion on the same base test
split and feedback holdout with evaluate's `operating_metrics`, then `decide` applies the
`promotion` params:

- test ROC-AUC: challenger − champion ≥ −max_roc_auc_drop;
- test recall at the target FPR: each model at its own operating threshold (chosen on its own
  training split's out-of-fold predictions for `evaluate.target_fpr`), challenger − champion
  ≥ −max_recall_drop; this is the recall each model would really deliver if served;
- feedback-holdout accuracy at the operating threshold, once the holdout has
  `min_holdout_rows` rows: challenger − champion ≥ min_holdout_gain. The holdout holds only
  trusted verdicts (confirmed by a second submitter or approved by a reviewer,
  `phishguard.feedback.trust`): no single key controls the evidence the gate judges on;
- behaviour (`phishguard.modeling.behaviour`): on perturbed copies of the base test rows, the
  challenger flips the champion's decision at most `max_flip_ratio` × the flips of a twin
  retrained without the single-key verdicts + `max_flip_excess`.

The report also carries, per submitter, how many verdicts were used, held and refused in
this retrain (featurize's `trust` block of reports/split.json).

No champion yet (first run) promotes; so does the same model built again (the same package
version, or the same model file at the same threshold: the same predictions).
A champion that fails its checks cannot be served anyway, so the challenger replaces it.

    python -m phishguard.modeling.promotion   # print reports/promotion.json's decision
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from phishguard import PhishguardError, paths
from phishguard.config.sections import PromotionParams
from phishguard.feedback.trust import SINGLE_KEY_ROWS
from phishguard.modeling import bundle
from phishguard.modeling.behaviour import flip_rates
from phishguard.modeling.bundle import Bundle, package_version
from phishguard.modeling.evaluate import holdout_metrics
from phishguard.provenance import read_json

PROMOTED, KEPT = "promoted", "kept"
PASS, FAIL, NOT_APPLIED = "pass", "fail", "not applied"
HOLDOUT_KEYS = ("rows", "roc_auc", "recall", "precision", "accuracy")  # `operating_metrics`


@dataclass(frozen=True)
class Contender:
    """One side of the comparison: a package's identity and its metrics on the shared splits."""

    version: str
    model_sha256: str
    model_name: str
    threshold: float
    test: dict[str, Any]
    """Test split: `roc_auc` and `recall` at the operating threshold (`rows` too)."""
    feedback_holdout: dict[str, Any]
    """`operating_metrics` of the feedback holdout."""


def challenger(manifest: dict[str, Any]) -> Contender:
    """The challenger from its evaluated manifest (metrics as evaluate wrote them)."""
    metrics = manifest["metrics"]
    try:
        test = {
            "rows": metrics["test"]["n"],
            "roc_auc": metrics["test"]["roc_auc"],
            "recall": metrics["test"]["at_threshold"]["recall"],
        }
        feedback_holdout = {key: metrics["feedback_holdout"][key] for key in HOLDOUT_KEYS}
    except (KeyError, TypeError) as error:
        raise PhishguardError(
            f"{paths.METRICS}: no {error} among the metrics the promotion gate compares; "
            "re-run the evaluate stage"
        ) from None
    return Contender(
        version=package_version(manifest),
        model_sha256=manifest["model_sha256"],
        model_name=manifest["model_name"],
        threshold=float(manifest["threshold"]),
        test=test,
        feedback_holdout=feedback_holdout,
    )


def champion(model: Bundle, test: pd.DataFrame, feedback_holdout: pd.DataFrame) -> Contender:
    """The served package scored on the challenger's test split and feedback holdout, at its
    own operating threshold, by the same code as evaluate's."""
    threshold = float(model.manifest["threshold"])
    scored = holdout_metrics(model, test, threshold)
    return Contender(
        version=model.version,
        model_sha256=model.manifest["model_sha256"],
        model_name=model.manifest["model_name"],
        threshold=threshold,
        test={key: scored[key] for key in ("rows", "roc_auc", "recall")},
        feedback_holdout=holdout_metrics(model, feedback_holdout, threshold),
    )


def served_package(store: Path = paths.PACKAGE_STORE) -> Path | None:
    """The folder of the package `latest` in the BentoML store, or None when there is none.

    Read from the store's own `latest` pointer (no bentoml import: it costs seconds)."""
    pointer = store / "latest"
    if not pointer.is_file():
        return None
    folder = store / pointer.read_text(encoding="utf-8").strip()
    return folder if folder.is_dir() else None


def load_champion(store: Path = paths.PACKAGE_STORE) -> tuple[Bundle | None, str | None]:
    """The served package, loaded and verified, or (None, why there is no usable one)."""
    folder = served_package(store)
    if folder is None:
        return None, f"no champion yet: {store} holds no package (first run)"
    try:
        return bundle.load(folder), None
    except PhishguardError as error:
        return None, f"the served package fails its checks, so it cannot stay: {error}"


def _rule(
    name: str, description: str, new: float | None, old: float | None, allowed: float
) -> dict[str, Any]:
    change = None if new is None or old is None else round(new - old, 6)
    verdict = NOT_APPLIED if change is None else PASS if change >= allowed - 1e-12 else FAIL
    return {
        "rule": name,
        "description": description,
        "challenger": new,
        "champion": old,
        "change": change,
        "min_change": allowed,
        "verdict": verdict,
    }


def behaviour_rule(flips: dict[str, Any] | None, params: PromotionParams) -> dict[str, Any]:
    """The behavioural check as a rule: `change` (the champion's decisions the challenger flips
    on perturbed base test copies) against the allowance from `baseline` (those its twin,
    retrained without the single-key verdicts, flips)."""
    rule: dict[str, Any] = {
        "rule": "behaviour_flips",
        "description": "champion decisions flipped on perturbed copies of base test rows, "
        "against a twin retrained with another seed without the single-key verdicts",
        "challenger": None if flips is None else flips["change"],
        "champion": None,
        "change": None if flips is None else flips["change"],
        "baseline": None if flips is None else flips["baseline"],
        "max_change": None,
        "verdict": NOT_APPLIED,
    }
    if flips is None:
        rule["note"] = "no training rows given to retrain the twin"
        return rule
    allowed = round(params.max_flip_ratio * flips["baseline"] + params.max_flip_excess, 6)
    rule["max_change"] = allowed
    rule["rows"] = flips["rows"]
    rule["verdict"] = PASS if flips["change"] <= allowed + 1e-12 else FAIL
    return rule


def rules(
    new: Contender,
    old: Contender,
    params: PromotionParams,
    flips: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Each rule of the gate with both values, the change and its verdict."""
    checked = [
        _rule(
            "test_roc_auc",
            "ROC-AUC on the base test split",
            new.test["roc_auc"],
            old.test["roc_auc"],
            -params.max_roc_auc_drop,
        ),
        _rule(
            "test_recall_at_target_fpr",
            "recall on the base test split, each model at its own operating threshold "
            "(chosen for the target FPR)",
            new.test["recall"],
            old.test["recall"],
            -params.max_recall_drop,
        ),
    ]
    rows = new.feedback_holdout["rows"]
    holdout = _rule(
        "feedback_holdout_accuracy",
        f"accuracy on the trusted feedback holdout at the operating threshold (from "
        f"{params.min_holdout_rows} rows)",
        new.feedback_holdout["accuracy"],
        old.feedback_holdout["accuracy"],
        params.min_holdout_gain,
    )
    if rows < params.min_holdout_rows:
        holdout["verdict"] = NOT_APPLIED
        holdout["note"] = f"the holdout has {rows} rows, fewer than {params.min_holdout_rows}"
    checked.append(holdout)
    checked.append(behaviour_rule(flips, params))
    return checked


def decide(
    new: Contender,
    old: Contender | None,
    params: PromotionParams,
    no_champion: str | None = None,
    flips: dict[str, Any] | None = None,
    feedback_trust: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The gate's decision and everything behind it: reports/promotion.json's content.

    `old` None means there is no usable champion (`no_champion` says why): promote. `flips`:
    `behaviour.flip_rates` (None: the check is not applied); `feedback_trust`: featurize's
    trust block (verdicts used, held, refused per submitter), reported as it is.
    """
    report: dict[str, Any] = {
        "challenger": asdict(new),
        "champion": asdict(old) if old else None,
        "margins": asdict(params),
        "rules": rules(new, old, params, flips) if old else [],
        "feedback_by_submitter": (feedback_trust or {}).get("by_submitter", {}),
        "feedback_trust": {
            k: v
            for k, v in (feedback_trust or {}).items()
            if k not in ("by_submitter", SINGLE_KEY_ROWS)
        },
    }
    failed = [rule for rule in report["rules"] if rule["verdict"] == FAIL]
    if old is None:
        decision, reasons = PROMOTED, [no_champion or "no champion yet (first run)"]
    elif new.version == old.version:
        decision, reasons = PROMOTED, [f"the champion is this same package ({new.version})"]
    elif same_model(new, old):
        decision, reasons = (
            PROMOTED,
            [
                f"the same model file (sha256 {new.model_sha256[:12]}…) at the same threshold, "
                "re-packaged with new provenance or metrics"
            ],
        )
    elif failed:
        decision, reasons = KEPT, [_failure(rule) for rule in failed]
    else:
        decision, reasons = PROMOTED, ["the challenger is within every margin of the champion"]
    report["decision"], report["reasons"] = decision, reasons
    report["same_model"] = old is not None and same_model(new, old)
    report["summary"] = summary(report)
    return report


def same_model(new: Contender, old: Contender) -> bool:
    """The same package, or the same model file at the same threshold: the same predictions."""
    same_predictions = new.model_sha256 == old.model_sha256 and new.threshold == old.threshold
    return new.version == old.version or same_predictions


def judge(
    manifest: dict[str, Any],
    store: Path,
    test: pd.DataFrame,
    feedback_holdout: pd.DataFrame,
    params: PromotionParams,
    train: pd.DataFrame | None = None,
    feedback_trust: dict[str, Any] | None = None,
    model_dir: Path = paths.MODEL_DIR,
) -> dict[str, Any]:
    """`decide` between the evaluated `manifest` (the challenger, its model in `model_dir`)
    and the package served from `store` (the champion, scored here on `test` and
    `feedback_holdout`); with the challenger's `train` rows, the behavioural check too."""
    served, no_champion = load_champion(store)
    old = champion(served, test, feedback_holdout) if served is not None else None
    new = challenger(manifest)
    flips = None
    if served is not None and old is not None and train is not None and not same_model(new, old):
        trained = bundle.load(model_dir, evaluated=False)
        lone = (feedback_trust or {}).get(SINGLE_KEY_ROWS, [])
        trusted_train = train.drop(index=train.index[lone])
        flips = flip_rates(served, trained, new.threshold, trusted_train, test)
    return decide(new, old, params, no_champion, flips, feedback_trust)


def _failure(rule: dict[str, Any]) -> str:
    if rule["rule"] == "behaviour_flips":
        return (
            f"{rule['description']}: {rule['change']:.4f} of the copies flipped, the twin "
            f"{rule['baseline']:.4f}, allowed ≤ {rule['max_change']:.4f}"
        )
    return (
        f"{rule['description']}: challenger {rule['challenger']:.4f} vs champion "
        f"{rule['champion']:.4f} (change {rule['change']:+.4f}, allowed ≥ {rule['min_change']:+.4f})"
    )


def summary(report: dict[str, Any]) -> str:
    """One line: what was decided, for which packages, and why."""
    new, old = report["challenger"], report["champion"]
    if report["decision"] == KEPT:
        return (
            f"KEPT champion {old['version']}: challenger {new['version']} refused — "
            + "; ".join(report["reasons"])
        )
    same = " (same model)" if report.get("same_model") else ""
    return f"PROMOTED{same} challenger {new['version']}: " + "; ".join(report["reasons"])


def format_decision(report: dict[str, Any]) -> str:
    """The decision and each rule as plain text (the stage's log and `make retrain`)."""
    lines = [f"promotion: {report['summary']}"]
    for rule in report["rules"]:
        values = (
            f"challenger {rule['challenger']} champion {rule['champion']} change {rule['change']}"
        )
        if rule["rule"] == "behaviour_flips":
            values = f"flips {rule['change']} twin {rule['baseline']} allowed {rule['max_change']}"
        note = f" ({rule['note']})" if "note" in rule else ""
        lines.append(f"  [{rule['verdict']}] {rule['rule']}: {values}{note}")
    for name, counts in report.get("feedback_by_submitter", {}).items():
        shown = ", ".join(f"{counts[k]} {k}" for k in ("used", "held", "refused", "superseded"))
        lines.append(f"  verdicts of {name}: {shown}")
    return "\n".join(lines)


def main() -> None:
    """Print reports/promotion.json's decision (`make retrain` does, after `dvc repro`)."""
    try:
        report = read_json(paths.PROMOTION_REPORT)
    except FileNotFoundError:
        print(f"{paths.PROMOTION_REPORT} not found: run the pipeline first", file=sys.stderr)
        raise SystemExit(1) from None
    print(format_decision(report))


if __name__ == "__main__":
    main()
