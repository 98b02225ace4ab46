"""Process environment: the working folder and the offline/no-telemetry defaults."""

from __future__ import annotations

import os
from pathlib import Path

# Variables that keep every library we use quiet and offline. Set (not overridden) in
# every stage process and in the Airflow processes the Makefile starts.
OFFLINE_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
}


def apply_offline_defaults() -> None:
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


def home() -> Path:
    """The project's working folder (databases, artifacts, caches).

    `DOMAINLLM_HOME` wins; otherwise `.domainllm` under the current directory. The
    resolved value is exported so child processes and `${DOMAINLLM_HOME}` in specs agree.
    """
    value = os.environ.get("DOMAINLLM_HOME") or str(Path.cwd() / ".domainllm")
    path = Path(value).expanduser().resolve()
    os.environ["DOMAINLLM_HOME"] = str(path)
    return path
