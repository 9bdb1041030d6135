"""The packaged phishguard model as an MLflow pyfunc, logged as code (MLflow "models from code").

MLflow loads this file, not a pickle: `load_context` reads the package that travels as the
model's artifact (the model bundle: the native UBJSON or skops file, `package.json` and
`package.sha256`) through `phishguard.serving.scoring.load_scorer`, the one verified load
(`phishguard.modeling.bundle.load`). `predict` takes a DataFrame of
the 30 features and scores it with `phishguard.serving.batch.score_table`, the very path of
`phishguard predict` and the service's CSV endpoint: the same checks, the same engineered
inputs, the same probabilities. A row that fails the schema is an error naming row and field,
never a score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel, PythonModelContext

from phishguard.contract.problems import RecordError
from phishguard.serving.batch import RESULT_COLUMNS, score_table
from phishguard.serving.scoring import Scorer, load_scorer

PACKAGE_ARTIFACT = "package"


class RejectedRowsError(MlflowException):
    """Rows the schema refuses (a `RecordError`'s problems): `mlflow models serve` answers
    HTTP 400 with `row N: field=...` as its message's first line.

    The scoring server rewrites the message of any MlflowException that `predict` raises to
    "Failed to predict data '<the whole input>'. Error: ...", which buries the row and field
    under a dump of the input; any other exception becomes a generic BAD_REQUEST with a stack
    trace. So this error keeps the message it was raised with.
    """

    def __init__(self, error: RecordError) -> None:
        super().__init__(str(error), error_code=INVALID_PARAMETER_VALUE)
        self.problems = error.problems

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_message"):  # set once, by __init__
            self._message = value


class PhishguardModel(PythonModel):
    """30 features in; `phishing_probability`, `is_phishing` (at the operating threshold) and
    `label` out, one row per input row, in order."""

    scorer: Scorer

    def load_context(self, context: PythonModelContext) -> None:
        self.scorer = load_scorer(Path(context.artifacts[PACKAGE_ARTIFACT]), nthread=1)

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        scores = score_table(self.scorer, pd.DataFrame(model_input))
        if rejected := scores.rejects_error():
            raise RejectedRowsError(rejected) from None
        return scores.scored.loc[:, list(RESULT_COLUMNS)].reset_index(drop=True)


mlflow.models.set_model(PhishguardModel())
