"""Prefect result storage on S3: GENLOOP_RESULTS_URL=s3://BUCKET/PREFIX (components/storage.py).

Prefect 3 takes its default result storage from PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK, the
slug of a saved block. genloop saves a `RemoteFileSystem` block (fsspec/s3fs, so no
prefect-aws) named `genloop-results` holding the bucket URL and the endpoint, never
credentials: s3fs reads AWS_* from the environment of whichever process writes a result
(the CLI, a worker, a Kubernetes job), so each needs them in its own environment.
"""
from __future__ import annotations

import os

from components.storage import S3Location, check_bucket, fsspec_options, results_location

RESULT_BLOCK = "genloop-results"
RESULT_BLOCK_SLUG = f"remote-file-system/{RESULT_BLOCK}"


def result_block(location: S3Location):
    from prefect.filesystems import RemoteFileSystem

    return RemoteFileSystem(basepath=location.url, settings=fsspec_options(location))


def save_result_block(location: S3Location) -> str:
    """Check the bucket, save (or update) the `genloop-results` block; its slug."""
    check_bucket(location)
    result_block(location).save(RESULT_BLOCK, overwrite=True)
    return RESULT_BLOCK_SLUG


def configure_result_storage() -> str | None:
    """For entry points, before Prefect reads its settings: with GENLOOP_RESULTS_URL set,
    results persist by default to that bucket (explicit PREFECT_RESULTS_* settings win).
    A no-op that imports nothing from Prefect when the variable is unset."""
    location = results_location()
    if location is None:
        return None
    os.environ.setdefault("PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK", RESULT_BLOCK_SLUG)
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    return save_result_block(location)
