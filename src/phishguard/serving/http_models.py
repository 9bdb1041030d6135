"""The service's request and response models, generated from the schema for /docs (OpenAPI).

`Record` has one field per feature of `phishguard.contract.schema`, typed with the feature's
allowed values, so the OpenAPI page lists the 30 fields and their domains. The endpoints take
`Records`: a list of objects *documented* as `Record`s but checked by the one check engine
(`phishguard.contract.record_checks.records_matrix`), not by pydantic, so every problem keeps
its `record i: field …` message and a batch is checked with numpy, not one object per record.
`POST /feedback` takes `FeedbackItems` the same way (checked by `phishguard.feedback.intake`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from phishguard.contract.schema import CLASS_NAMES, DOMAINS, FEATURES

Record = create_model(
    "Record",
    __config__=ConfigDict(extra="forbid"),
    __doc__="One website's 30 signals, each one of its allowed values.",
    **{name: (Literal[DOMAINS[name]], ...) for name in FEATURES},
)

Records = Annotated[
    list[dict[str, Any]],
    WithJsonSchema(
        {
            "type": "array",
            "items": Record.model_json_schema(),
            "minItems": 1,
            "description": "Records of the 30 features (at most PHISHGUARD_MAX_ROWS).",
        }
    ),
]
"""The records of a request, as the schema defines them (checked by `records_matrix`)."""

Label = Literal[CLASS_NAMES[1], CLASS_NAMES[0]]

_FEEDBACK_ITEM = {
    "type": "object",
    "title": "FeedbackItem",
    "description": (
        "An analyst's verdict: the record (or the prediction_id /predict gave it) and its label."
    ),
    "properties": {
        "record": Record.model_json_schema(),
        "prediction_id": {"type": "string", "description": "instead of record"},
        "label": {"enum": list(Label.__args__)},
        "source": {"type": "string", "maxLength": 64, "description": "default: api"},
        "note": {"type": "string", "maxLength": 1000},
    },
    "required": ["label"],
    "additionalProperties": False,
}

FeedbackItems = Annotated[
    list[Any],
    WithJsonSchema(
        {
            "type": "array",
            "items": _FEEDBACK_ITEM,
            "minItems": 1,
            "description": "Verdicts (at most PHISHGUARD_MAX_ROWS); all stored, or none.",
        }
    ),
]
"""The verdicts of a `POST /feedback` (checked by `phishguard.feedback.intake`)."""


class Result(BaseModel):
    """One scored record: P(phishing), the decision at the model's threshold, the class name,
    and the id to send a verdict on it with (`POST /feedback`)."""

    phishing_probability: float
    is_phishing: bool
    label: Label
    prediction_id: str | None = None


class Reason(BaseModel):
    """One input that moved the score: its value and its contribution (log-odds)."""

    feature: str
    value: int
    contribution: float


class ExplainedResult(Result):
    reasons: list[Reason]


class Results(BaseModel):
    results: list[Result]


class ExplainedResults(BaseModel):
    results: list[ExplainedResult]


class VerdictStatus(BaseModel):
    """One verdict of a `POST /feedback`: its content id, its label, whether it was new."""

    verdict_id: str
    label: Label
    status: Literal["accepted", "already_present"]


ReviewItems = Annotated[
    list[Any],
    WithJsonSchema(
        {
            "type": "array",
            "items": {
                "type": "object",
                "title": "ReviewItem",
                "description": "A reviewer's decision on a stored (typically disputed) verdict.",
                "properties": {
                    "verdict_id": {"type": "string"},
                    "decision": {"enum": ["approve", "reject"]},
                },
                "required": ["verdict_id", "decision"],
                "additionalProperties": False,
            },
            "minItems": 1,
            "description": "Decisions (at most PHISHGUARD_MAX_ROWS); all recorded, or none.",
        }
    ),
]
"""The decisions of a `POST /feedback/review` (checked by `phishguard.feedback.intake`)."""


class ReviewAnswer(BaseModel):
    """How many verdicts were approved and rejected."""

    approved: int
    rejected: int


class FeedbackAnswer(BaseModel):
    """`accepted` new verdicts, `already_present` ones; one `verdicts` entry per item, in order."""

    accepted: int
    already_present: int
    verdicts: list[VerdictStatus]


class Metadata(BaseModel):
    """The packaged model's identity, threshold and metrics, and the service's limits."""

    model_config = ConfigDict(protected_namespaces=())

    model_name: str | None = None
    model_sha256: str | None = None
    threshold: float | None = None
    features: list[str] | None = None
    label_mapping: dict[str, Any] | None = None
    train_data_sha256: str | None = None
    git_revision: str | None = None
    metrics: dict[str, Any] | None = None
    operating_point: dict[str, Any] | None = None
    schema_version: int | None = None
    max_rows_per_request: int = Field(gt=0)
    max_explain_rows_per_request: int = Field(gt=0)
