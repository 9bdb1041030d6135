"""validate: quarantine rows outside the schema, with reasons; report counts and duplicates."""

from dataclasses import dataclass

import pandas as pd

from phishguard import PhishguardError, paths
from phishguard.entrypoint import run
from phishguard.params import load_section
from phishguard.provenance import write_json
from phishguard.validation import duplicate_stats, quarantine


@dataclass(frozen=True)
class ValidateParams:
    max_quarantine_fraction: float


def main() -> None:
    params = load_section("validate", ValidateParams)
    table = pd.read_parquet(paths.RAW_TABLE)
    result = quarantine(table)
    paths.VALID_TABLE.parent.mkdir(parents=True, exist_ok=True)
    paths.QUARANTINE_TABLE.parent.mkdir(parents=True, exist_ok=True)
    result.valid.to_parquet(paths.VALID_TABLE, index=False)
    result.quarantined.to_csv(paths.QUARANTINE_TABLE, index=False)
    fraction = len(result.quarantined) / len(table)
    write_json(
        paths.VALIDATION_REPORT,
        {
            "input_rows": len(table),
            "valid_rows": len(result.valid),
            "quarantined_rows": len(result.quarantined),
            "quarantined_fraction": round(fraction, 6),
            "quarantined_by_reason": result.reason_counts(),
            **duplicate_stats(result.valid),
        },
    )
    if fraction > params.max_quarantine_fraction:
        raise PhishguardError(
            f"{len(result.quarantined)} of {len(table)} rows ({fraction:.2%}) quarantined, over the "
            f"limit of {params.max_quarantine_fraction:.2%}; see {paths.QUARANTINE_TABLE}"
        )


if __name__ == "__main__":
    run(main, "validate")
