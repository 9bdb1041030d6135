"""train: fit the configured model on the featurized training split; write it as a bundle."""

import pandas as pd

from phishguard import paths
from phishguard.config.params import load_section, section
from phishguard.entrypoint import run
from phishguard.modeling.train import TrainParams, train_and_save


def main() -> None:
    params = load_section("train", TrainParams)
    spec = section("model")
    train_and_save(spec, params.seed, pd.read_parquet(paths.TRAIN_TABLE), paths.MODEL_DIR)


if __name__ == "__main__":
    run(main, "train")
