"""Analysts' verdicts (issue 13): checked on the way in (`intake`), kept append-only (`store`)."""
