"""The feedback store's MongoDB backend (`phishguard.feedback.store` describes the store): the
collection `feedback` (database `phishguard`, or `$PHISHGUARD_MONGODB_DATABASE`), with
`feedback_assertions` (who sent each verdict, and when last) and `feedback_reviews` beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from phishguard.contract.schema import COLUMNS, SCHEMA_VERSION, feature_vector_ids
from phishguard.data import mongo
from phishguard.data.origin import CHAMPION_PHISHING, RECEIVED_AT, REVIEW, SUBMITTER, VERDICT_ID
from phishguard.feedback.store import (
    DECISIONS,
    NO_SUBMITTER,
    NOTE,
    PREDICTION_ID,
    SOURCE,
    AddResult,
    add_result,
    assertion_frame,
    champion_scores,
    iso_text,
    received_now,
    row_values,
    verdict_frame,
)


class MongoFeedbackStore:
    """The store as a MongoDB collection (a `pymongo` collection, or `mongomock_ng`'s)."""

    def __init__(self, collection: Any, client: Any | None = None) -> None:
        self.collection = collection
        self.where = f"{collection.database.name}.{collection.name}"
        self._client = client
        self._assertions = collection.database[f"{collection.name}_assertions"]
        self._reviews = collection.database[f"{collection.name}_reviews"]

    def add(self, verdicts: pd.DataFrame, source: str, submitter: str | None = None) -> AddResult:
        """Insert the verdicts whose `_id` is absent (`mongo.inserted_flags`)."""
        ids, values, optional = row_values(verdicts)
        received = received_now()
        scores = champion_scores(verdicts)
        documents = [
            {
                "_id": verdict_id,
                **dict(zip(COLUMNS, row, strict=True)),
                "provenance": {
                    SOURCE: optional[SOURCE][index] or source,
                    RECEIVED_AT: received,
                    "schema_version": SCHEMA_VERSION,
                    "submitter": submitter,
                    NOTE: optional[NOTE][index],
                    PREDICTION_ID: optional[PREDICTION_ID][index],
                    CHAMPION_PHISHING: scores[index],
                },
            }
            for index, (verdict_id, row) in enumerate(zip(ids, values, strict=True))
        ]
        flags = mongo.inserted_flags(self.collection, documents)
        who = submitter or NO_SUBMITTER
        for verdict_id, vector in zip(ids, feature_vector_ids(verdicts), strict=True):
            record = str(vector)
            key = {"_id": f"{verdict_id} {who}"}
            found = self._assertions.find_one(key)
            if found is None:
                self._assertions.insert_one(
                    {
                        **key,
                        VERDICT_ID: verdict_id,
                        SUBMITTER: who,
                        "record": record,
                        "at": received,
                    }
                )
                continue
            # As in SQLite: moved forward only past a newer, other verdict on the same record.
            newer = {"_id": {"$ne": key["_id"]}, SUBMITTER: who, "record": record}
            if self._assertions.find_one({**newer, "at": {"$gt": found["at"]}}) is not None:
                self._assertions.update_one(key, {"$set": {"at": received}})
        return add_result(ids, flags)

    def verdicts(self) -> pd.DataFrame:
        """Every stored verdict; see `VERDICT_COLUMNS`."""
        records = []
        for document in self.collection.find({}):
            provenance = document.get("provenance", {})
            records.append(
                {
                    **{name: document[name] for name in COLUMNS},
                    VERDICT_ID: document["_id"],
                    RECEIVED_AT: iso_text(provenance[RECEIVED_AT]),
                    "source": provenance.get("source"),
                    NOTE: provenance.get(NOTE),
                    "submitter": provenance.get("submitter"),
                    PREDICTION_ID: provenance.get(PREDICTION_ID),
                    "schema_version": provenance.get("schema_version", SCHEMA_VERSION),
                }
            )
        return verdict_frame(records)

    def assertions(self) -> pd.DataFrame:
        """Every verdict once per submitter who sent it; see `ASSERTION_COLUMNS` (a verdict
        from before issue 27, with no assertion, counts once for its first submitter)."""
        reviews = {r["_id"]: r["decision"] for r in self._reviews.find({})}
        asserted: dict[str, list[tuple[str, Any]]] = {}
        for found in self._assertions.find({}):
            asserted.setdefault(found[VERDICT_ID], []).append((found[SUBMITTER], found["at"]))
        records = []
        for document in self.collection.find({}):
            provenance = document.get("provenance", {})
            first = (provenance.get("submitter") or NO_SUBMITTER, provenance[RECEIVED_AT])
            for who, at in asserted.get(document["_id"], [first]):
                records.append(
                    {
                        **{name: document[name] for name in COLUMNS},
                        VERDICT_ID: document["_id"],
                        RECEIVED_AT: iso_text(at),
                        SUBMITTER: who,
                        CHAMPION_PHISHING: provenance.get(CHAMPION_PHISHING),
                        REVIEW: reviews.get(document["_id"]),
                    }
                )
        return assertion_frame(records)

    def review(self, decisions: Mapping[str, str], reviewer: str) -> list[str]:
        """As `SqliteFeedbackStore.review`."""
        verdict_ids = list(decisions)
        known = {d["_id"] for d in self.collection.find({"_id": {"$in": verdict_ids}}, {"_id": 1})}
        unknown = [i for i in verdict_ids if i not in known]
        if not unknown:
            for verdict_id, decision in decisions.items():
                self._reviews.replace_one(
                    {"_id": verdict_id},
                    {"reviewer": reviewer, "decision": DECISIONS[decision], "at": received_now()},
                    upsert=True,
                )
        return unknown

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
