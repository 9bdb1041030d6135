"""Features, split, training, the model bundle, honest evaluation, tracking and the report."""
