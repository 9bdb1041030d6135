"""Hydra composition of `conf/` into `params.yaml`, byte-for-byte as DVC does it.

`dvc exp run` recomposes params.yaml itself; `dvc repro` reads the committed file. This
module lets `make params` regenerate it and the tests prove the two agree. It also puts
params.yaml back when a stage of `dvc exp run` fails, so a failed experiment (a misspelt
`-S +model.max_dept=4`) does not leave its overrides behind to break every later `dvc repro`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phishguard import paths
from phishguard.config.params import ParamsError, did_you_mean

CONF_DIR = Path("conf")
# Set by `dvc exp run` for every stage it runs (in the workspace or a queue's temp folder).
EXPERIMENT_ENV = "DVC_EXP_NAME"
_NOT_OVERRIDDEN = re.compile(r"Could not override '([^']+)'")

log = logging.getLogger(__name__)


def compose_params(overrides: list[str] | None = None, conf_dir: Path = CONF_DIR) -> str:
    """The YAML text DVC's Hydra composition writes for `conf_dir` and `overrides`.

    An override of a key conf/ lacks is a `ParamsError` naming the nearest valid key (Hydra's
    own advice, to add the key with `+`, is wrong for a typo)."""
    # Hydra and OmegaConf cost ~0.5 s of import: only `phishguard params` and a failed
    # experiment compose.
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf import OmegaConf

    overrides = overrides or []
    with initialize_config_dir(str(conf_dir.resolve()), version_base=None):
        try:
            config = compose(config_name="config", overrides=overrides)
        except MissingConfigException as error:  # a config group's option that is not there
            text = str(error).split("Config search path")[0]
            raise ParamsError(" ".join(text.split())) from None
        except ConfigCompositionException as error:
            found = _NOT_OVERRIDDEN.search(str(error))
            if found is None:
                raise ParamsError(" ".join(str(error).split())) from None
            # Group choices (model=random_forest) only: the keys the typo was meant for.
            choices = [o for o in overrides if "=" in o and "." not in o.split("=")[0]]
            known = _dotted_keys(OmegaConf.to_container(compose("config", choices)))
            key = found.group(1)
            raise ParamsError(
                f"override {key}=…: conf/ has no key {key}{did_you_mean(key, known)} "
                f"(a leading + would add it, but no stage reads a new key)"
            ) from None
    OmegaConf.resolve(config)
    return OmegaConf.to_yaml(config)


def _dotted_keys(tree: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every key of a nested mapping, dotted (`model`, `model.max_depth`, ...)."""
    keys = []
    for name, value in tree.items():
        keys.append(f"{prefix}{name}")
        if isinstance(value, Mapping):
            keys += _dotted_keys(value, f"{prefix}{name}.")
    return keys


def restore_params_after_failed_experiment(
    environ: Mapping[str, str] = os.environ,
    params: Path = paths.PARAMS,
    conf_dir: Path = CONF_DIR,
) -> bool:
    """When a stage of `dvc exp run` fails, write params.yaml back as conf/ composes it without
    the experiment's overrides (what `make params` writes, and what is committed); True if it
    changed. Outside an experiment, or where conf/ is absent, nothing happens."""
    if not environ.get(EXPERIMENT_ENV) or not conf_dir.is_dir() or not params.is_file():
        return False
    try:
        text = compose_params(conf_dir=conf_dir)
    except ParamsError:
        return False
    if params.read_text() == text:
        return False
    params.write_text(text)
    log.warning(
        "the experiment failed: params.yaml restored from conf/ (its -S overrides are not "
        "kept); `git checkout dvc.lock && dvc checkout` puts back the outputs it replaced"
    )
    return True
