"""The group-aware stratified train/test split, and where the analysts' feedback goes.

Base rows (the dataset) are split exactly as without feedback, by `group_aware_split`: the base
test rows stay in test whatever feedback arrives, so metrics stay comparable across versions.

Feedback rows (`origin == "feedback"`) follow `feedback_split`, whose rule for conflicts is:

(a) The trust rules (`phishguard.feedback.trust`) decide which verdicts are used: newest wins
    within a submitter; a conflict between submitters, or one key's word against a confident
    champion, is held as disputed until confirmed; each key's unconfirmed share is capped.
    One used verdict per feature vector goes on (the newest).
(b) A feedback vector equal to a base TEST vector is never trained on (it would straddle train
    and test): counted as `in_base_test`, kept out of train and holdout.
(c) A feedback vector equal to base TRAIN vectors: the feedback verdict joins train and, where
    its label differs, replaces those base rows' label in training (the analysts' fresher truth;
    the champion/challenger gate guards against poisoning): counted as `conflicts_overridden`
    (vectors) and `base_rows_relabelled` (rows); with the same label, as `confirmations`.
(d) The other feedback vectors are new: the newest `feedback_holdout_fraction` of the trusted
    ones (confirmed by two submitters or approved by a reviewer; by their verdict's
    `received_at`, rounded half up) form the feedback holdout, the rest join train. No single
    key's verdicts are ever in the holdout the promotion gate judges on.

So a feature vector never straddles train and test, nor train and the feedback holdout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from phishguard import PhishguardError
from phishguard.config.sections import TrustParams
from phishguard.contract.schema import FEATURES, LABEL, TARGET, feature_vector_ids, to_target
from phishguard.data.origin import FEEDBACK, FEEDBACK_COLUMNS, ORIGIN, RECEIVED_AT, VERDICT_ID
from phishguard.feedback.trust import SINGLE_KEY_ROWS, TRUSTED, all_trusted, assess
from phishguard.modeling.features import featurize


def with_target(valid: pd.DataFrame) -> pd.DataFrame:
    """The 30 features plus the 0/1 target (1 = phishing), in canonical order."""
    table = valid.loc[:, list(FEATURES)].copy()
    table[TARGET] = to_target(valid[LABEL])
    return table


def group_aware_split(
    table: pd.DataFrame, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split so identical feature vectors never fall on both sides, stratified by target.

    One fold of StratifiedGroupKFold(round(1 / test_size)) becomes the test set.
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    folds = round(1 / test_size)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    train_idx, test_idx = next(splitter.split(table, table[TARGET], feature_vector_ids(table)))
    return table.iloc[np.sort(train_idx)].reset_index(drop=True), table.iloc[
        np.sort(test_idx)
    ].reset_index(drop=True)


def split_report(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Sizes, class balance, and the train/test feature-vector overlap (must be 0)."""
    train_ids, test_ids = set(feature_vector_ids(train)), set(feature_vector_ids(test))

    def balance(part: pd.DataFrame) -> dict:
        return {
            "rows": len(part),
            "phishing": int(part[TARGET].sum()),
            "phishing_fraction": round(float(part[TARGET].mean()), 6),
        }

    return {
        "train": balance(train),
        "test": balance(test),
        "test_fraction": round(len(test) / (len(train) + len(test)), 6),
        "feature_vector_overlap": len(train_ids & test_ids),
    }


def base_and_feedback(valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The validated table's base rows and feedback rows, each reindexed from 0.

    A table without an `origin` column (a landing without feedback) is all base rows. The
    feedback rows always have `received_at` and `verdict_id`.
    """
    if ORIGIN not in valid.columns:
        return valid, valid.iloc[:0].assign(
            **{name: pd.Series(dtype="string") for name in (RECEIVED_AT, VERDICT_ID)}
        )
    is_feedback = (valid[ORIGIN] == FEEDBACK).to_numpy(dtype=bool)
    return (
        valid.loc[~is_feedback].reset_index(drop=True),
        valid.loc[is_feedback].reset_index(drop=True),
    )


def feedback_table(feedback: pd.DataFrame) -> pd.DataFrame:
    """The feedback rows as model columns and target, plus the origin columns (`received_at`,
    `verdict_id`, `submitter`, `champion_phishing`, `review`; absent ones null)."""
    table = featurize(with_target(feedback))
    for name in FEEDBACK_COLUMNS:
        values = feedback[name] if name in feedback.columns else pd.Series(pd.NA, feedback.index)
        table[name] = values.astype("string").to_numpy()
    return table


@dataclass(frozen=True)
class FeedbackSplit:
    """The training rows (base train, relabelled, then feedback), the feedback holdout, and the
    counts of the conflict rule (the `feedback` block of reports/split.json)."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    report: dict


def feedback_split(
    train: pd.DataFrame,
    test: pd.DataFrame,
    feedback: pd.DataFrame,
    holdout_fraction: float,
    trust: TrustParams | None = None,
) -> FeedbackSplit:
    """Apply the module's conflict rule to `feedback` against the base `train`/`test` split.

    `train` and `test` have the model's columns and `TARGET`; `feedback` has the same columns
    plus the origin columns (`feedback_table`). The result's `train` is `train` unchanged when
    `feedback` is empty, and its tables keep `train`'s columns. `trust` None weighs nothing:
    every verdict is used and trusted, the newest per vector winning (callers that test the
    other rules; the featurize stage always passes `split.trust`).
    """
    if not 0 <= holdout_fraction < 1:
        raise ValueError(f"feedback_holdout_fraction must be in [0, 1), got {holdout_fraction}")
    columns = list(train.columns)
    ordered = feedback.sort_values([RECEIVED_AT, VERDICT_ID], kind="stable")
    weighed = all_trusted(ordered) if trust is None else assess(ordered, len(train), trust)
    newest = weighed.used  # rule (a)
    newest_ids = feature_vector_ids(newest) if len(newest) else np.array([], dtype=object)
    train_ids, test_ids = feature_vector_ids(train), set(feature_vector_ids(test))
    in_test = np.isin(newest_ids, list(test_ids))  # rule (b)
    in_train = np.isin(newest_ids, train_ids) & ~in_test

    relabelled = train.copy()
    overridden = confirmations = rows_relabelled = 0
    targets = newest[TARGET].to_numpy()[in_train]
    for vector, target in zip(newest_ids[in_train], targets, strict=True):
        rows = train_ids == vector  # rule (c)
        differ = rows & (train[TARGET].to_numpy() != target)
        if differ.any():
            overridden += 1
            rows_relabelled += int(differ.sum())
            relabelled.loc[differ, TARGET] = target
        else:
            confirmations += 1

    new = newest.loc[~in_test & ~in_train]  # rule (d): already oldest first
    trusted_new = new.loc[new[TRUSTED].to_numpy(dtype=bool)]
    holding = math.floor(len(trusted_new) * holdout_fraction + 0.5)
    holdout = trusted_new.iloc[len(trusted_new) - holding :]
    new = new.loc[~new.index.isin(holdout.index)]
    joining = pd.concat([newest.loc[in_train], new])
    joining = joining.sort_values([RECEIVED_AT, VERDICT_ID], kind="stable")
    lone = np.flatnonzero(~joining[TRUSTED].to_numpy(dtype=bool)) + len(relabelled)
    if len(joining):
        relabelled = pd.concat([relabelled, joining[columns]], ignore_index=True)
    received = ordered[RECEIVED_AT]
    report = {
        "rows_in": len(feedback),
        "groups": len(newest),
        "superseded": len(feedback) - len(newest),
        "trust": {**weighed.report, SINGLE_KEY_ROWS: lone.tolist()},
        "in_base_test": int(in_test.sum()),
        "conflicts_overridden": overridden,
        "base_rows_relabelled": rows_relabelled,
        "confirmations": confirmations,
        "to_train": len(joining),
        "to_holdout": len(holdout),
        "holdout_fraction": holdout_fraction,
        "oldest_received_at": None if received.empty else str(received.iloc[0]),
        "newest_received_at": None if received.empty else str(received.iloc[-1]),
    }
    return FeedbackSplit(
        train=relabelled, holdout=holdout[columns].reset_index(drop=True), report=report
    )


def holdout_overlaps(train: pd.DataFrame, test: pd.DataFrame, holdout: pd.DataFrame) -> dict:
    """Feature vectors the feedback holdout shares with train and with test (both must be 0)."""
    held = set(feature_vector_ids(holdout))
    return {
        "train": len(held & set(feature_vector_ids(train))),
        "test": len(held & set(feature_vector_ids(test))),
    }


@dataclass(frozen=True)
class PipelineSplit:
    """The featurize stage's tables and its split report (reports/split.json)."""

    train: pd.DataFrame
    test: pd.DataFrame
    holdout: pd.DataFrame
    report: dict


def split_for_training(
    valid: pd.DataFrame,
    test_size: float,
    seed: int,
    holdout_fraction: float,
    trust: TrustParams | None = None,
) -> PipelineSplit:
    """The validated table (base and feedback rows) as the model's train, test and feedback
    holdout: base rows split by feature-vector group, feedback joined by `feedback_split`'s
    rule, and the report. Raises `PhishguardError` if any feature vector straddles two parts,
    which the rules exclude: a failure here is a bug, never a result to train on."""
    base, feedback = base_and_feedback(valid)
    train, test = group_aware_split(featurize(with_target(base)), test_size, seed)
    joined = feedback_split(train, test, feedback_table(feedback), holdout_fraction, trust)
    report = split_report(joined.train, test)
    overlaps = holdout_overlaps(joined.train, test, joined.holdout)
    report["feedback"] = {**joined.report, "holdout_overlap": overlaps}
    straddling = report["feature_vector_overlap"] + overlaps["train"] + overlaps["test"]
    if straddling:
        raise PhishguardError(f"{straddling} feature vectors straddle the split")
    return PipelineSplit(joined.train, test, joined.holdout, report)
