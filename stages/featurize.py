"""featurize: the model's input columns (the 30 signals + the engineered signal counts) and
the 0/1 target (phishing = 1), split train/test by feature-vector group; feedback rows join
train or the feedback holdout by the rule in phishguard.modeling.split."""

import pandas as pd

from phishguard import PhishguardError, paths
from phishguard.config.params import load_section
from phishguard.config.sections import SplitParams
from phishguard.entrypoint import run
from phishguard.modeling.features import featurize
from phishguard.modeling.split import (
    base_and_feedback,
    feedback_split,
    feedback_table,
    group_aware_split,
    holdout_overlaps,
    split_report,
    with_target,
)
from phishguard.provenance import write_json


def main() -> None:
    params = load_section("split", SplitParams)
    base, feedback = base_and_feedback(pd.read_parquet(paths.VALID_TABLE))
    train, test = group_aware_split(featurize(with_target(base)), params.test_size, params.seed)
    joined = feedback_split(train, test, feedback_table(feedback), params.feedback_holdout_fraction)
    report = split_report(joined.train, test)
    overlaps = holdout_overlaps(joined.train, test, joined.holdout)
    report["feedback"] = {**joined.report, "holdout_overlap": overlaps}
    straddling = report["feature_vector_overlap"] + overlaps["train"] + overlaps["test"]
    if straddling:
        raise PhishguardError(f"{straddling} feature vectors straddle the split")
    paths.TRAIN_TABLE.parent.mkdir(parents=True, exist_ok=True)
    joined.train.to_parquet(paths.TRAIN_TABLE, index=False)
    test.to_parquet(paths.TEST_TABLE, index=False)
    joined.holdout.to_parquet(paths.FEEDBACK_HOLDOUT, index=False)
    write_json(paths.SPLIT_REPORT, report)


if __name__ == "__main__":
    run(main, "featurize")
