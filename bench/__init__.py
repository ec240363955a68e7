"""bench: an ensemble/AutoML benchmarking toolkit for music-genre classification.

Importing bench sets two MLflow switches for this process and the job processes it starts,
before MLflow is imported anywhere:

- ``MLFLOW_DISABLE_TELEMETRY=true`` unless already set: MLflow 3 otherwise looks up
  ``config.mlflow-telemetry.io`` and writes ``~/.config/mlflow/telemetry.json``, and a benchmark
  of private data contacts nothing it was not told to (set it to ``false`` to opt back in);
- ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true``: MLflow writes ``View run ... at: URL`` to
  stdout itself, outside logging, so a password in the tracking URL would reach the console
  unmasked. bench prints its own, masked, link instead.
"""

import os as _os

__version__ = "0.1.0"

_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
_os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
