"""Object storage (S3 or any S3-compatible server) for the DVC remote, Prefect results and
exported bentos, selected by environment variables:

    GENLOOP_DVC_REMOTE=s3://bucket/prefix       the DVC remote (else the local-disk one)
    GENLOOP_RESULTS_URL=s3://bucket/prefix      Prefect result storage (flows/storage.py)
    GENLOOP_BENTO_EXPORT_URL=s3://bucket/prefix where `export_bento` puts bentos
    GENLOOP_S3_ENDPOINT_URL=http://host:port    a non-AWS endpoint (MinIO, a local server);
                                                AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL also work

Credentials come only from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_PROFILE), read by boto3/s3fs themselves: this module never copies
them into a file, a config or a message. Bucket URLs and the endpoint are not secrets.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from components.errors import GenloopError

DVC_REMOTE_ENV = "GENLOOP_DVC_REMOTE"
RESULTS_ENV = "GENLOOP_RESULTS_URL"
BENTO_EXPORT_ENV = "GENLOOP_BENTO_EXPORT_URL"
ENDPOINT_ENV = "GENLOOP_S3_ENDPOINT_URL"
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
CHECK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class S3Location:
    """A bucket and key prefix, plus the endpoint that serves it (None: AWS itself)."""
    bucket: str
    prefix: str
    endpoint_url: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def where(self) -> str:
        """The location for messages: URL and endpoint, never credentials."""
        return self.url + (f" at {self.endpoint_url}" if self.endpoint_url else "")


def endpoint_url(env=None) -> str | None:
    env = os.environ if env is None else env
    return (env.get(ENDPOINT_ENV) or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")) or None


def parse_s3_url(url: str, endpoint: str | None = None, what: str = "storage URL") -> S3Location:
    parts = urlsplit(url.strip())
    if parts.scheme != "s3" or not parts.netloc or "@" in parts.netloc:
        # a URL with user:secret@ in it is not repeated: the error reaches logs
        shown = f"{parts.scheme}://***@{parts.netloc.rpartition('@')[2]}{parts.path}" if "@" in parts.netloc \
            else repr(url)
        raise GenloopError(f"{what} {shown} is not an s3://BUCKET/PREFIX URL "
                           f"(credentials go in AWS_* environment variables, never in the URL).")
    return S3Location(parts.netloc, parts.path.strip("/"), endpoint)


def configured(variable: str, env=None) -> S3Location | None:
    """The S3 location an environment variable selects (None when unset or empty)."""
    env = os.environ if env is None else env
    url = env.get(variable, "").strip()
    return parse_s3_url(url, endpoint_url(env), what=variable) if url else None


def dvc_remote(env=None) -> S3Location | None:
    return configured(DVC_REMOTE_ENV, env)


def results_location(env=None) -> S3Location | None:
    return configured(RESULTS_ENV, env)


def bento_export_location(env=None) -> S3Location | None:
    return configured(BENTO_EXPORT_ENV, env)


def _client(location: S3Location, timeout: float):
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"})
    return boto3.session.Session().client("s3", endpoint_url=location.endpoint_url, config=config)


def check_bucket(location: S3Location, timeout: float = CHECK_TIMEOUT_S) -> None:
    """Fail fast, with one line, when the endpoint is unreachable, the credentials are
    missing or rejected, or the bucket does not exist: callers run this before they write
    anything (DVC cache, data.dvc, model store), so a bad setting leaves nothing behind."""
    from botocore.exceptions import (BotoCoreError, ClientError, ConnectionError as BotoConnectionError,
                                     NoCredentialsError, PartialCredentialsError, ProfileNotFound)

    where = location.where()
    try:
        _client(location, timeout).head_bucket(Bucket=location.bucket)
    except (NoCredentialsError, PartialCredentialsError, ProfileNotFound) as exc:
        raise GenloopError(f"no usable AWS credentials for {where} ({type(exc).__name__}): set AWS_ACCESS_KEY_ID "
                           f"and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment.") from None
    except BotoConnectionError:
        raise GenloopError(f"cannot reach the S3 endpoint for {where}: check {ENDPOINT_ENV} "
                           f"(or AWS_ENDPOINT_URL_S3) and that the server is up.") from None
    except ValueError as exc:                   # botocore: "Invalid endpoint: localhost:9000"
        raise GenloopError(f"the S3 endpoint for {where} is not a URL ({exc}): give {ENDPOINT_ENV} "
                           f"with its scheme, e.g. http://localhost:9000.") from None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchBucket") or status == 404:
            raise GenloopError(f"bucket {location.bucket!r} does not exist ({where}): create it "
                               f"(`aws s3 mb s3://{location.bucket}`) or fix the URL.") from None
        if code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                    "ExpiredToken", "InvalidToken") or status == 403:
            raise GenloopError(f"S3 refused the credentials for {where} ({code or status}): check "
                               f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN.") from None
        raise GenloopError(f"S3 error for {where}: {code or status}.") from None
    except BotoCoreError as exc:
        raise GenloopError(f"S3 check of {where} failed: {type(exc).__name__}.") from None


def fsspec_options(location: S3Location) -> dict:
    """s3fs options for `location`: the endpoint only; s3fs reads credentials from the env."""
    return {"client_kwargs": {"endpoint_url": location.endpoint_url}} if location.endpoint_url else {}


@contextlib.contextmanager
def s3fs_endpoint(location: S3Location):
    """Route fsspec's `s3://` URLs (what `bentoml export/import` open) to the location's
    endpoint for the duration, through fsspec's own config; restored afterwards."""
    import fsspec.config

    saved = fsspec.config.conf.get("s3")
    if location.endpoint_url:
        fsspec.config.conf["s3"] = {**(saved or {}), **fsspec_options(location)}
    try:
        yield
    finally:
        if saved is None:
            fsspec.config.conf.pop("s3", None)
        else:
            fsspec.config.conf["s3"] = saved


def list_keys(location: S3Location) -> list[str]:
    """Every key under the location's prefix (for checks and tests)."""
    paginator = _client(location, CHECK_TIMEOUT_S * 6).get_paginator("list_objects_v2")
    prefix = f"{location.prefix}/" if location.prefix else ""
    return [obj["Key"] for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix)
            for obj in page.get("Contents", [])]
