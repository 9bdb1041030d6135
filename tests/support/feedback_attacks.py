"""Feedback sent the way users send it (issue 27): through `POST /feedback` of the service's
ASGI app in-process, with analyst and reviewer keys, then through the pipeline's own trust and
split rules: the backdoor attack and the confirmed or reviewed honest correction.

Nothing here is written into the repository: the store, keys and models go to a scratch folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from phishguard.config.params import load_section
from phishguard.config.sections import SplitParams
from phishguard.contract.schema import DOMAINS, FEATURES, TARGET, feature_vector_ids
from phishguard.feedback.store import open_store
from phishguard.modeling.bundle import Bundle
from phishguard.modeling.features import featurize
from phishguard.modeling.split import FeedbackSplit, feedback_split, feedback_table
from phishguard.serving.key_stores import FileKeyStore
from tests.support import REPO
from tests.support.service import asgi_app_without_metrics, restore_env

# The signals a page's HTML and scripts give (the trigger used three of them).
PAGE_SIGNALS = (
    "Favicon",
    "Request_URL",
    "URL_of_Anchor",
    "Links_in_tags",
    "SFH",
    "Submitting_to_email",
    "Redirect",
    "on_mouseover",
    "RightClick",
    "popUpWidnow",
    "Iframe",
)
BACKDOOR_VERDICTS = 2_400
REQUEST_ROWS = 800  # the attack arrives in 3 requests, as in the issue
ANALYSTS = ("mallory", "alice", "bob")
REVIEWER = "rita"


def trust_params() -> SplitParams:
    """The project's `split` params (its trust rules), as featurize reads them."""
    return load_section("split", SplitParams, REPO / "params.yaml")


def trigger(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> dict[str, int]:
    """Three page signals and values, drawn by `seed`, whose combination no row carries."""
    rng = np.random.default_rng(seed)
    rows = pd.concat([train, test], ignore_index=True)
    while True:
        names = rng.choice(PAGE_SIGNALS, size=3, replace=False)
        values = {str(n): int(rng.choice(DOMAINS[str(n)])) for n in names}
        carried = np.logical_and.reduce([rows[n].to_numpy() == v for n, v in values.items()])
        if not carried.any():
            return values


def with_trigger(rows: pd.DataFrame, values: dict[str, int]) -> pd.DataFrame:
    """`rows` with the trigger set, featurized again (the signal counts follow)."""
    table = rows.loc[:, [*FEATURES, TARGET]].assign(**values)
    return featurize(table)


def backdoor_items(train: pd.DataFrame, values: dict[str, int], seed: int) -> list[dict]:
    """~2,400 training-set phishing vectors carrying the trigger, labelled legitimate."""
    phishing = train[train[TARGET] == 1]
    picked = phishing.sample(min(BACKDOOR_VERDICTS, len(phishing)), random_state=seed)
    return items(with_trigger(picked, values).assign(**{TARGET: 0}))


def items(rows: pd.DataFrame) -> list[dict]:
    """`rows` (model columns and `TARGET`) as `POST /feedback` items."""
    records = rows.loc[:, list(FEATURES)].astype(int).to_dict(orient="records")
    labels = np.where(rows[TARGET].to_numpy() == 1, "phishing", "legitimate")
    return [{"record": r, "label": str(label)} for r, label in zip(records, labels, strict=True)]


def recall_on(model: Bundle, rows: pd.DataFrame) -> float:
    """The share of the (all-phishing) `rows` that `model` flags at its threshold."""
    return float(np.mean(model.predict_proba(rows) >= float(model.manifest["threshold"])))


class FeedbackService:
    """The service's app in-process on a scratch store, with analyst and reviewer keys."""

    def __init__(self, client: object, keys: dict[str, str], store_dir: Path) -> None:
        self.client = client
        self.keys = keys
        self.store_dir = store_dir

    def send(self, who: str, feedback: list[dict], per_request: int = REQUEST_ROWS) -> list[str]:
        """POST the verdicts as `who`, `per_request` a request (in order: each request's
        arrival time is later); the verdict ids answered."""
        ids = []
        for start in range(0, len(feedback), per_request):
            answer = self.client.post(
                "/feedback",
                json={"feedback": feedback[start : start + per_request]},
                headers={"Authorization": f"Bearer {self.keys[who]}"},
            )
            assert answer.status_code == 200, answer.text
            ids += [v["verdict_id"] for v in answer.json()["verdicts"]]
        return ids

    def review(self, verdict_ids: list[str], decision: str = "approve") -> None:
        """The reviewer's decision on `verdict_ids`."""
        reviews = [{"verdict_id": i, "decision": decision} for i in dict.fromkeys(verdict_ids)]
        answer = self.client.post(
            "/feedback/review",
            json={"reviews": reviews},
            headers={"Authorization": f"Bearer {self.keys[REVIEWER]}"},
        )
        assert answer.status_code == 200, answer.text

    def split(self, train: pd.DataFrame, test: pd.DataFrame) -> FeedbackSplit:
        """The stored verdicts through featurize's rule (trust, conflicts, trusted holdout)."""
        store = open_store({"PHISHGUARD_FEEDBACK_DIR": str(self.store_dir)})
        try:
            verdicts = store.assertions()
        finally:
            store.close()
        params = trust_params()
        feedback = feedback_table(verdicts)
        return feedback_split(train, test, feedback, params.feedback_holdout_fraction, params.trust)


@contextmanager
def feedback_service(package_dir: Path, folder: Path) -> Iterator[FeedbackService]:
    """`FeedbackService` of the package `package_dir`, its store and keys in `folder`."""
    # Imported only now, as tests/conftest.py does: the service module decides at import
    # whether it declares its model (not when PHISHGUARD_PACKAGE_DIR names a folder).
    from starlette.testclient import TestClient

    keystore = FileKeyStore(folder / "api_keys.json")
    keys = {name: keystore.add(name, "analyst") for name in ANALYSTS}
    keys[REVIEWER] = keystore.add(REVIEWER, "reviewer")
    env = {
        "PHISHGUARD_PACKAGE_DIR": str(package_dir),
        "PHISHGUARD_PREDICTION_LOG": "off",
        "PHISHGUARD_FEEDBACK_DIR": str(folder / "feedback"),
        "PHISHGUARD_KEYS": str(keystore.path),
        "PHISHGUARD_AUTH": "writes",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from service.service import Phishguard

    try:
        with TestClient(asgi_app_without_metrics(Phishguard)) as client:
            yield FeedbackService(client, keys, folder / "feedback")
    finally:
        restore_env(saved)


def vectors_in(rows: pd.DataFrame, table: pd.DataFrame) -> int:
    """How many of `rows`' feature vectors `table` holds."""
    return int(np.isin(feature_vector_ids(rows), feature_vector_ids(table)).sum())
