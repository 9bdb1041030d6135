"""featurize: the model's input columns (the 30 signals + the engineered signal counts) and
the 0/1 target (phishing = 1), split train/test by feature-vector group; feedback rows join
train or the feedback holdout by the rule in phishguard.modeling.split."""

import pandas as pd

from phishguard import paths
from phishguard.config.params import load_section
from phishguard.config.sections import SplitParams
from phishguard.entrypoint import run
from phishguard.io import write_table
from phishguard.modeling.split import split_for_training
from phishguard.provenance import write_json


def main() -> None:
    params = load_section("split", SplitParams)
    split = split_for_training(
        pd.read_parquet(paths.VALID_TABLE),
        params.test_size,
        params.seed,
        params.feedback_holdout_fraction,
        params.trust,
    )
    write_table(paths.TRAIN_TABLE, split.train)
    write_table(paths.TEST_TABLE, split.test)
    write_table(paths.FEEDBACK_HOLDOUT, split.holdout)
    write_json(paths.SPLIT_REPORT, split.report)


if __name__ == "__main__":
    run(main, "featurize")
