"""Run layout, atomic publishing and stage manifests over local folders or object stores."""

from domainllm.artifacts.fs import join, url_to_fs
from domainllm.artifacts.layout import RunLayout, outputs_intact, read_manifest, slug_run_id, validate_run_id
from domainllm.artifacts.manifest import MANIFEST_NAME, Manifest, OutputFile
from domainllm.artifacts.publish import Staging, new_staging, publish

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "OutputFile",
    "RunLayout",
    "Staging",
    "join",
    "new_staging",
    "outputs_intact",
    "publish",
    "read_manifest",
    "slug_run_id",
    "url_to_fs",
    "validate_run_id",
]
