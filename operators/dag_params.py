"""What every domainllm DAG's trigger form asks first: the pipeline spec."""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import Param

DEFAULT_SPEC = os.environ.get("DOMAINLLM_SPEC", str(Path(__file__).resolve().parent.parent / "examples" / "demo" / "spec.yaml"))


def spec_param() -> Param:
    return Param(DEFAULT_SPEC, type="string", title="Pipeline spec", description="Path (on the workers) of the pipeline YAML.")
