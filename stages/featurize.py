"""featurize: the model's input columns (the 30 signals + the engineered signal counts) and
the 0/1 target (phishing = 1), split train/test by feature-vector group."""

import pandas as pd

from phishguard import PhishguardError, paths
from phishguard.config.params import load_section
from phishguard.config.sections import SplitParams
from phishguard.entrypoint import run
from phishguard.modeling.features import featurize
from phishguard.modeling.split import group_aware_split, split_report, with_target
from phishguard.provenance import write_json


def main() -> None:
    params = load_section("split", SplitParams)
    table = featurize(with_target(pd.read_parquet(paths.VALID_TABLE)))
    train, test = group_aware_split(table, params.test_size, params.seed)
    report = split_report(train, test)
    if report["feature_vector_overlap"]:
        raise PhishguardError(
            f"{report['feature_vector_overlap']} feature vectors straddle the split"
        )
    paths.TRAIN_TABLE.parent.mkdir(parents=True, exist_ok=True)
    train.to_parquet(paths.TRAIN_TABLE, index=False)
    test.to_parquet(paths.TEST_TABLE, index=False)
    write_json(paths.SPLIT_REPORT, report)


if __name__ == "__main__":
    run(main, "featurize")
