"""package: the champion/challenger gate, then (if the challenger wins) import the evaluated
model, its threshold and metrics into the BentoML store and give its registered MLflow version
the alias `champion`. A refusal keeps the served package and the alias, and is no failure:
reports/promotion.json and a WARNING say why."""

import logging

import pandas as pd

from phishguard import paths
from phishguard.config.params import load_section
from phishguard.config.sections import PromotionParams
from phishguard.entrypoint import run
from phishguard.modeling import promotion
from phishguard.modeling.package import candidate_manifest, package_model
from phishguard.modeling.tracking import set_champion
from phishguard.provenance import read_json, write_json

log = logging.getLogger("package")


def main() -> None:
    params = load_section("promotion", PromotionParams)
    test, holdout = pd.read_parquet(paths.TEST_TABLE), pd.read_parquet(paths.FEEDBACK_HOLDOUT)
    # The behavioural check retrains the challenger's recipe on its rows (the noise baseline).
    train = pd.read_parquet(paths.TRAIN_TABLE) if paths.TRAIN_TABLE.exists() else None
    trust = read_json(paths.SPLIT_REPORT).get("feedback", {}).get("trust")
    candidate = candidate_manifest()
    write_json(paths.PACKAGE_CANDIDATE, candidate)
    report = promotion.judge(candidate, paths.PACKAGE_STORE, test, holdout, params, train, trust)
    write_json(paths.PROMOTION_REPORT, report)
    if report["decision"] == promotion.KEPT:
        banner = "=" * 78
        log.warning(
            "\n%s\nWARNING: promotion refused; the champion stays served (not a failure)\n%s\n%s",
            banner,
            promotion.format_decision(report),
            banner,
        )
        return
    log.info(promotion.format_decision(report))
    folder = package_model()
    log.info("packaged %s", folder)
    set_champion(folder.name)  # the folder's name is the package's content-derived version


if __name__ == "__main__":
    run(main, "package")
