"""train: fit the configured model on the training split; write it with its metadata."""

import pandas as pd

from phishguard import paths
from phishguard.config.models import load_model_config
from phishguard.config.params import load_section
from phishguard.config.sections import TrainParams
from phishguard.entrypoint import run
from phishguard.modeling.train import train_and_save
from phishguard.provenance import write_json


def main() -> None:
    params = load_section("train", TrainParams)
    config = load_model_config()
    train = pd.read_parquet(paths.TRAIN_TABLE)
    metadata = train_and_save(config, params.seed, train, paths.MODEL_DIR)
    write_json(paths.MODEL_METADATA, metadata)


if __name__ == "__main__":
    run(main, "train")
