"""monitor: the drift check of the prediction log against the training split (issue 12).

With no prediction log yet the report says so; `dvc repro` re-runs this stage whenever the log
directory changes.
"""

from phishguard import paths
from phishguard.config.params import load_section
from phishguard.config.sections import MonitorParams
from phishguard.entrypoint import run
from phishguard.io import write_table
from phishguard.monitoring.check import monitor, share_tables
from phishguard.provenance import write_json


def main() -> None:
    params = load_section("monitor", MonitorParams)
    report = monitor(paths.PREDICTION_LOG_DIR, paths.TRAIN_TABLE, paths.REFERENCE_SCORES, params)
    write_json(paths.DRIFT_REPORT, report)
    for table, path in zip(share_tables(report), paths.DRIFT_PLOT_FILES, strict=True):
        write_table(path, table)


if __name__ == "__main__":
    run(main, "monitor")
