"""The benchmark's baseline: a minimal hand-written FastAPI + uvicorn server, same model, same checks.

Run: PHISHGUARD_PACKAGE_DIR=... uvicorn benchmarks.fastapi_server:app --host 127.0.0.1 --port P
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from phishguard import PhishguardError
from phishguard.contract.record_checks import records_matrix
from phishguard.serving.scoring import load_scorer

app = FastAPI()
scorer = load_scorer(Path(os.environ["PHISHGUARD_PACKAGE_DIR"]), nthread=1)


@app.post("/predict")
async def predict(request: Request) -> Response:
    body = await request.json()
    try:
        matrix = records_matrix(body["records"], 10_000)
    except (PhishguardError, KeyError, TypeError) as error:
        return JSONResponse({"error": str(error)}, status_code=422)
    return Response(scorer.results_json(matrix), media_type="application/json")


@app.get("/readyz")
def ready() -> dict[str, str]:
    return {"status": "ok"}
