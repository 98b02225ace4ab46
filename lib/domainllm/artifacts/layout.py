"""Where a run's stage outputs live, and the read side of the stage contract."""

from __future__ import annotations

import re

import fsspec

from domainllm.artifacts.fs import is_local, join, url_to_fs
from domainllm.artifacts.manifest import MANIFEST_NAME, Manifest

TRACKING_NAME = "mlflow.json"
PARAMS_NAME = "params.json"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def validate_run_id(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(
            f"run id {run_id!r} is not usable in paths and labels: use 1-128 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit (e.g. 'perl-2026-11-25')"
        )
    return run_id


def slug_run_id(value: str) -> str:
    """Airflow run ids (`manual__2026-11-25T10:00:00+00:00`) -> a path- and label-safe id."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip("-._")
    return validate_run_id(slug[:128] or "run")


class RunLayout:
    """`<artifact_root>/<run_id>/<stage>/` with `.staging/`, `.trash/` and `.shards/` beside
    the stages."""

    def __init__(self, artifact_root: str, run_id: str) -> None:
        self.run_id = validate_run_id(run_id)
        self.fs: fsspec.AbstractFileSystem
        self.fs, root = url_to_fs(artifact_root)
        self.run_dir = join(root, run_id)

    def stage_dir(self, stage: str) -> str:
        return join(self.run_dir, stage)

    def manifest_path(self, stage: str) -> str:
        return join(self.stage_dir(stage), MANIFEST_NAME)

    def shards_root(self, stage: str) -> str:
        """Where the shard tasks of a sharded stage publish, until the stage collects them."""
        return join(self.run_dir, ".shards", stage)

    def shard_dir(self, stage: str, shard: int, num_shards: int) -> str:
        return join(self.shards_root(stage), f"{shard:05d}-of-{num_shards:05d}")

    def checkpoint_dir(self, stage: str) -> str:
        """Where a training stage keeps its checkpoints: outside staging, so a rerun of a
        killed attempt resumes from them."""
        return join(self.run_dir, ".checkpoints", stage)

    def staging_root(self) -> str:
        return join(self.run_dir, ".staging")

    def trash_root(self) -> str:
        return join(self.run_dir, ".trash")

    def params_path(self) -> str:
        return join(self.run_dir, PARAMS_NAME)

    def read_params(self) -> dict[str, str]:
        """The run's parameters (`domainllm run start --param K=V`, e.g. the flywheel's window)."""
        import json

        path = self.params_path()
        if not self.fs.exists(path):
            return {}
        with self.fs.open(path, "rb") as fh:
            return json.loads(fh.read())

    def tracking_path(self) -> str:
        return join(self.run_dir, TRACKING_NAME)

    def mlflow_run_id(self) -> str | None:
        """The pipeline's parent MLflow run (written by `domainllm run start`), None before."""
        import json

        path = self.tracking_path()
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as fh:
            return json.loads(fh.read()).get("mlflow_run_id")

    def url(self, path: str) -> str:
        """A path of this layout as others must see it: a plain path locally, a full URI
        (`s3://...`) on an object store."""
        return path if is_local(self.fs) else self.fs.unstrip_protocol(path)

    def read_manifest(self, stage: str) -> Manifest | None:
        """The stage's manifest if the stage finished, else None."""
        return read_manifest(self.fs, self.stage_dir(stage))


def read_manifest(fs: fsspec.AbstractFileSystem, stage_dir: str) -> Manifest | None:
    path = join(stage_dir, MANIFEST_NAME)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as fh:
        return Manifest.from_json(fh.read())


def outputs_intact(fs: fsspec.AbstractFileSystem, stage_dir: str, manifest: Manifest) -> bool:
    """Every file the manifest lists is there with its recorded size (cheap; no re-hash)."""
    for out in manifest.outputs:
        path = join(stage_dir, out.path)
        try:
            if fs.size(path) != out.bytes:
                return False
        except FileNotFoundError:
            return False
    return True
