"""ingest: the landed source file → the canonical raw table + reports/ingest.json."""

from phishguard import paths
from phishguard.entrypoint import run
from phishguard.ingestion import read_landed
from phishguard.provenance import file_sha256, write_json
from phishguard.schema import content_sha256


def main() -> None:
    source, table = read_landed(paths.LANDING_DIR)
    paths.RAW_TABLE.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(paths.RAW_TABLE, index=False)
    write_json(
        paths.INGEST_REPORT,
        {
            "source": source.name,
            "source_sha256": file_sha256(source),
            "rows": len(table),
            "columns": list(map(str, table.columns)),
            "content_sha256": content_sha256(table),
        },
    )


if __name__ == "__main__":
    run(main, "ingest")
