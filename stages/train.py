"""train: fit the configured model on the featurized training split; write it as a bundle."""

import pandas as pd

from phishguard import paths
from phishguard.config.models import load_model_config
from phishguard.config.params import load_section
from phishguard.config.sections import TrainParams
from phishguard.entrypoint import run
from phishguard.modeling.train import train_and_save


def main() -> None:
    params = load_section("train", TrainParams)
    config = load_model_config()
    train_and_save(config, params.seed, pd.read_parquet(paths.TRAIN_TABLE), paths.MODEL_DIR)


if __name__ == "__main__":
    run(main, "train")
