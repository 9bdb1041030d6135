"""Hydra composition of `conf/` into `params.yaml`, byte-for-byte as DVC does it.

`dvc exp run` recomposes params.yaml itself; `dvc repro` reads the committed file. This
module lets `make params` regenerate it and the tests prove the two agree.
"""

from __future__ import annotations

from pathlib import Path

CONF_DIR = Path("conf")


def compose_params(overrides: list[str] | None = None, conf_dir: Path = CONF_DIR) -> str:
    """The YAML text DVC's Hydra composition writes for `conf_dir` and `overrides`."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(conf_dir.resolve()), version_base=None):
        config = compose(config_name="config", overrides=overrides or [])
    OmegaConf.resolve(config)
    return OmegaConf.to_yaml(config)
