"""What the deployed model sees (issue 12): the prediction log and the drift statistics.

`prediction_log` writes and reads the log of scored records; `drift` compares a batch of
feature vectors (and, when known, its probabilities) with the training data; `check` is
the `phishguard drift` command on top of both.
"""
