"""Getting the data in: landing a source, the readers, ingest, validation and quarantine, MongoDB."""
