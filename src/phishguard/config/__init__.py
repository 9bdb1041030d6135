"""Configuration: the Hydra composition of `conf/` and the typed parameters the stages read."""
