"""validate: quarantine rows outside the schema, with reasons; report counts and duplicates."""

from phishguard import PhishguardError, paths
from phishguard.config.params import load_section
from phishguard.config.sections import ValidateParams
from phishguard.data.quarantine_file import quarantine_file
from phishguard.entrypoint import run
from phishguard.provenance import write_json


def main() -> None:
    params = load_section("validate", ValidateParams)
    counts = quarantine_file(paths.RAW_TABLE, paths.VALID_TABLE, paths.QUARANTINE_TABLE)
    write_json(paths.VALIDATION_REPORT, counts.report())
    if counts.quarantined_fraction > params.max_quarantine_fraction:
        raise PhishguardError(
            f"{counts.quarantined_rows} of {counts.input_rows} rows "
            f"({counts.quarantined_fraction:.2%}) quarantined, over the limit of "
            f"{params.max_quarantine_fraction:.2%}; see {paths.QUARANTINE_TABLE}"
        )


if __name__ == "__main__":
    run(main, "validate")
