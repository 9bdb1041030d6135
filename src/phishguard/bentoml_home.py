"""Point BentoML at this checkout's model store: `bentoml serve` works exactly as typed.

`bentoml serve`, `bentoml build` and `bentoml models list` read the store under BENTOML_HOME,
which BentoML documents as its only store setting (default `~/bentoml`). The package stage
writes the served model to `models/bentoml/` (a DVC output), so the project's environment sets
BENTOML_HOME to it at interpreter start-up: `phishguard_bentoml_home.pth`, installed into
`.venv` with the package, imports this module. An explicit BENTOML_HOME always wins, and
outside a source checkout (an installed wheel, a built bento) nothing is set.
"""

import os
from pathlib import Path

from phishguard.paths import BENTOML_HOME

CHECKOUT = Path(__file__).resolve().parents[2]

if "BENTOML_HOME" not in os.environ and (CHECKOUT / "dvc.yaml").is_file():
    os.environ["BENTOML_HOME"] = str(CHECKOUT / BENTOML_HOME)
