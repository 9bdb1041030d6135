"""Which verdicts may train the next model (issue 27): the feedback trust rules.

A feedback row is one submitter's verdict on one feature vector (`FeedbackStore.assertions()`,
through the snapshot), with the served model's P(phishing) of the record when it arrived
(`champion_phishing`) and a reviewer's decision (`review`). Each row gets one status:

- `superseded`: the same submitter sent a newer verdict on the same vector ("newest wins"
  within a submitter: label L, then P, then L again leaves L in force);
- `refused`: a reviewer rejected it, or it contradicts the label a reviewer approved;
- `held` (the disputed queue, waiting for a second submitter or a reviewer):
  - `submitters_disagree`: submitters' current verdicts on the vector carry both labels;
  - `contradicts_champion`: one submitter's word against a confident champion (P ≥
    `dispute_probability` for the other label);
  - `share_cap`: past the submitter's cap of single-key rows in this retrain
    (`max_submitter_share` of the base training rows; the oldest go first);
- `used`: it trains the model. `trusted` when no single key controls it: confirmed by a second
  submitter's matching verdict, or approved by a reviewer. Only trusted verdicts may form the
  feedback holdout the promotion gate judges on (`phishguard.modeling.split`).

The counts per submitter and reason are the `trust` block of reports/split.json and the
per-submitter table of reports/promotion.json and the CML report.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from phishguard.config.sections import TrustParams
from phishguard.contract.schema import TARGET, feature_vector_ids
from phishguard.data.origin import CHAMPION_PHISHING, RECEIVED_AT, REVIEW, SUBMITTER, VERDICT_ID

USED, HELD, REFUSED, SUPERSEDED = "used", "held", "refused", "superseded"
STATUSES = (USED, HELD, REFUSED, SUPERSEDED)
APPROVED, REJECTED = "approved", "rejected"
NO_SUBMITTER = "(none)"
TRUSTED = "trusted"
# In the trust report: the positions in the training table of the rows that rest on one key's
# word (the behavioural check retrains a twin without them).
SINGLE_KEY_ROWS = "single_key_train_rows"
MAX_LISTED = 100  # held verdict ids listed in the report, for reviewers


@dataclass(frozen=True)
class Assessment:
    """`used`: one row per used feature vector (its newest used verdict), with `trusted`;
    `status`/`reason`: per input row; `report`: the counts (see the module docstring)."""

    used: pd.DataFrame
    status: np.ndarray
    reason: np.ndarray
    report: dict


def _column(table: pd.DataFrame, name: str) -> pd.Series:
    if name in table.columns:
        return table[name]
    return pd.Series([None] * len(table), index=table.index, dtype=object)


def _contradicts(target: int, phishing: float | None, threshold: float) -> bool:
    """Whether a verdict of `target` (1 phishing) meets a champion confident of the other."""
    if phishing is None or pd.isna(phishing):
        return False  # no model was served when it arrived: nothing to contradict
    return phishing <= 1 - threshold if target == 1 else phishing >= threshold


def assess(feedback: pd.DataFrame, base_train_rows: int, params: TrustParams) -> Assessment:
    """Apply the rules of the module's docstring to `feedback` (model columns, `TARGET`,
    `received_at`, `verdict_id`, `submitter`, `champion_phishing`, `review`)."""
    table = feedback.sort_values([RECEIVED_AT, VERDICT_ID], kind="stable").reset_index(drop=True)
    rows = len(table)
    vectors = feature_vector_ids(table) if rows else np.array([], dtype=object)
    who = _column(table, SUBMITTER).astype(object).where(lambda s: s.notna(), NO_SUBMITTER)
    review = _column(table, REVIEW).astype("string").fillna("").to_numpy(dtype=object)
    scores = pd.to_numeric(_column(table, CHAMPION_PHISHING), errors="coerce").to_numpy()
    targets = table[TARGET].to_numpy() if rows else np.array([], dtype=int)
    status = np.full(rows, USED, dtype=object)
    reason = np.full(rows, "single_key", dtype=object)
    trusted = np.zeros(rows, dtype=bool)

    keys = pd.Series(vectors).astype(str) + "\x00" + who.reset_index(drop=True).astype(str)
    older = keys.duplicated(keep="last").to_numpy()
    status[older], reason[older] = SUPERSEDED, "newer_verdict_same_submitter"
    rejected = ~older & (review == REJECTED)
    status[rejected], reason[rejected] = REFUSED, "rejected_by_reviewer"
    current = np.flatnonzero(~older & ~rejected)
    for members in pd.Series(current).groupby(vectors[current]).groups.values():
        index = current[np.asarray(members)]
        approved = index[review[index] == APPROVED]
        if len(approved):
            winner = targets[approved[-1]]  # the newest approval stands
            agree = index[targets[index] == winner]
            status[agree], reason[agree], trusted[agree] = USED, "reviewer_approved", True
            other = index[targets[index] != winner]
            status[other], reason[other] = REFUSED, "contradicts_reviewer"
        elif len(set(targets[index])) > 1:
            status[index], reason[index] = HELD, "submitters_disagree"
        elif len(index) > 1:
            reason[index], trusted[index] = "confirmed", True
        elif _contradicts(int(targets[index[0]]), scores[index[0]], params.dispute_probability):
            status[index], reason[index] = HELD, "contradicts_champion"
    cap = math.floor(params.max_submitter_share * base_train_rows)
    lone = np.flatnonzero((status == USED) & ~trusted)
    for members in pd.Series(lone).groupby(who.to_numpy()[lone]).groups.values():
        over = lone[np.asarray(members)][cap:]  # arrival order: the oldest are kept
        status[over], reason[over] = HELD, "share_cap"

    used_rows = np.flatnonzero(status == USED)
    newest = ~pd.Series(vectors[used_rows]).duplicated(keep="last").to_numpy()
    chosen = used_rows[newest]
    used = table.iloc[chosen].reset_index(drop=True)
    # A vector is trusted when any of its used verdicts is (they all carry the same label).
    trusted_vectors = set(vectors[used_rows][trusted[used_rows]])
    used[TRUSTED] = np.isin(vectors[chosen], list(trusted_vectors))
    report = _report(table, who.to_numpy(), status, reason, trusted, cap, params)
    return Assessment(used=used, status=status, reason=reason, report=report)


def _report(
    table: pd.DataFrame,
    who: np.ndarray,
    status: np.ndarray,
    reason: np.ndarray,
    trusted: np.ndarray,
    cap: int,
    params: TrustParams,
) -> dict:
    """Counts by status and reason, overall and per submitter; the first held verdict ids."""
    submitters = {}
    for name in sorted(set(who)):
        mine = who == name
        submitters[str(name)] = {
            **{state: int((status[mine] == state).sum()) for state in STATUSES},
            TRUSTED: int((trusted & mine & (status == USED)).sum()),
            "reasons": dict(sorted(Counter(reason[mine & (status != USED)]).items())),
        }
    held = np.flatnonzero(status == HELD)[:MAX_LISTED]
    return {
        "rows_in": len(table),
        **{state: int((status == state).sum()) for state in STATUSES},
        TRUSTED: int((trusted & (status == USED)).sum()),
        "dispute_probability": params.dispute_probability,
        "max_submitter_share": params.max_submitter_share,
        "share_cap_rows": cap,
        "by_submitter": submitters,
        "held_verdicts": [
            {VERDICT_ID: str(table.at[i, VERDICT_ID]), SUBMITTER: str(who[i]), "reason": reason[i]}
            for i in held
        ],
    }


def all_trusted(feedback: pd.DataFrame) -> Assessment:
    """Every row used and trusted, newest per vector: the rule before issue 27, for callers
    that weigh nothing (no `split.trust`)."""
    table = feedback.sort_values([RECEIVED_AT, VERDICT_ID], kind="stable").reset_index(drop=True)
    vectors = feature_vector_ids(table) if len(table) else np.array([], dtype=object)
    newest = ~pd.Series(vectors, dtype=object).duplicated(keep="last").to_numpy()
    used = table.loc[newest].reset_index(drop=True).assign(**{TRUSTED: True})
    status = np.where(newest, USED, SUPERSEDED).astype(object)
    return Assessment(used, status, np.full(len(table), "", dtype=object), {})
