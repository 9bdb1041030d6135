"""ingest: the landed source file → the canonical raw table + reports/ingest.json."""

from phishguard import paths
from phishguard.entrypoint import run
from phishguard.ingestion import ingest_file, landed_file
from phishguard.provenance import file_sha256, write_json


def main() -> None:
    source = landed_file(paths.LANDING_DIR)
    summary = ingest_file(source, paths.RAW_TABLE)
    write_json(
        paths.INGEST_REPORT,
        {
            "source": source.name,
            "source_sha256": file_sha256(source),
            "rows": summary.rows,
            "columns": summary.columns,
            "content_sha256": summary.content_sha256,
        },
    )


if __name__ == "__main__":
    run(main, "ingest")
