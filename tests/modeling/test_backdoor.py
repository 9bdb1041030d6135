"""Issue 27's backdoor, small and in-process: one analyst key sends ~2,400 training-set phishing
vectors carrying a 3-signal trigger that no row carries, labelled legitimate. The trust rules
hold what contradicts the confident champion and cap the rest, none of it reaches the holdout,
and the behavioural check refuses the challenger trained on what got in. (The full attack,
through POST /feedback on 5 seeds, is `make bench-retrain`.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phishguard.config.models import model_config
from phishguard.contract.schema import FEATURES, LABEL, RESULT_LEGITIMATE, TARGET
from phishguard.modeling import bundle
from phishguard.modeling.behaviour import flip_rates
from phishguard.modeling.promotion import KEPT, decide
from phishguard.modeling.split import feedback_split, feedback_table
from phishguard.modeling.train import train_and_save
from tests.modeling.test_promotion import PARAMS, contender
from tests.support.feedback_attacks import (
    BACKDOOR_VERDICTS,
    recall_on,
    trigger,
    trust_params,
    with_trigger,
)
from tests.support.retraining import XGBOOST, real_split
from tests.support.verdicts import verdict_frame


def trained(rows: pd.DataFrame, folder: Path, threshold: float = 0.5) -> bundle.Bundle:
    train_and_save(model_config({**XGBOOST, "n_estimators": 80}), 7, rows, folder)
    model = bundle.load(folder, evaluated=False)
    model.manifest["threshold"] = threshold
    return model


@pytest.fixture(scope="module")
def attack(real_table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict:
    train, test = real_split(real_table)
    values = trigger(train, test, seed=0)
    champion = trained(train, tmp_path_factory.mktemp("champion"))
    phishing = train[train[TARGET] == 1].sample(BACKDOOR_VERDICTS, random_state=0)
    poisoned = with_trigger(phishing, values).assign(**{TARGET: 0})
    rows = poisoned.loc[:, list(FEATURES)].assign(**{LABEL: RESULT_LEGITIMATE})
    scores = champion.probability(rows.loc[:, list(FEATURES)].to_numpy(dtype=np.float32))
    stored = verdict_frame(rows, submitter="mallory", champion_phishing=list(scores))
    params = trust_params()
    split = feedback_split(
        train, test, feedback_table(stored), params.feedback_holdout_fraction, params.trust
    )
    challenger = trained(split.train, tmp_path_factory.mktemp("challenger"))
    return {
        "train": train,
        "test": test,
        "split": split,
        "champion": champion,
        "challenger": challenger,
        "trigger_rows": with_trigger(test[test[TARGET] == 1], values),
    }


def test_the_trust_rules_hold_and_cap_one_key_s_backdoor(attack) -> None:
    trust = attack["split"].report["trust"]
    mallory = trust["by_submitter"]["mallory"]
    assert mallory["used"] <= trust["share_cap_rows"] == int(0.005 * len(attack["train"]))
    assert mallory["held"] > BACKDOOR_VERDICTS / 2  # most wait for a second key
    assert mallory["reasons"]["contradicts_champion"] > mallory["reasons"]["share_cap"] > 0
    assert sum(mallory[s] for s in ("used", "held", "refused", "superseded")) == trust["rows_in"]
    assert attack["split"].holdout.empty  # one key's verdicts are never the gate's evidence


def test_the_behavioural_check_refuses_the_backdoored_challenger(attack) -> None:
    split, train = attack["split"], attack["train"]
    lone = split.report["trust"]["single_key_train_rows"]
    assert len(lone) == split.report["trust"]["by_submitter"]["mallory"]["used"] > 0
    flips = flip_rates(
        attack["champion"], attack["challenger"], 0.5, split.train.drop(index=lone), attack["test"]
    )
    # The twin never saw the single-key rows: it flips (almost) nothing the champion says.
    assert flips["baseline"] < 0.005 < flips["change"] - 1.5 * flips["baseline"]
    report = decide(contender("challenger"), contender(), PARAMS, flips=flips)
    assert report["decision"] == KEPT
    assert [r["rule"] for r in report["rules"] if r["verdict"] == "fail"] == ["behaviour_flips"]
    # What the gate kept out: the challenger misses trigger rows the champion catches.
    champion_recall = recall_on(attack["champion"], attack["trigger_rows"])
    assert recall_on(attack["challenger"], attack["trigger_rows"]) < champion_recall - 0.01
    assert len(train) == len(split.train) - len(lone)
