"""Scoring with the packaged model: the scorer, batch scoring, request limits."""
