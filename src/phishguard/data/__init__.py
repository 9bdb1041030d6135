"""Getting the data in: sources, ingest, validation and quarantine, MongoDB."""
