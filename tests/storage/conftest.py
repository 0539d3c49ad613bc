"""A local S3 server (moto's ThreadedMotoServer on 127.0.0.1) with signature checking on:
an IAM user with full access (its keys are the test's AWS_* environment), a read-only user,
and a bucket. The real boto3/s3fs/dvc-s3 clients talk to it over HTTP like to any bucket."""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass

import pytest

BUCKET = "genloop-test"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    key_id: str
    secret: str
    readonly_key_id: str
    readonly_secret: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _user(iam, name: str, actions: list[str]) -> dict:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    return iam.create_access_key(UserName=name)["AccessKey"]


@pytest.fixture(scope="session")
def s3_server():
    """One per session: moto keeps its backends (users, buckets) per process, not per server."""
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._port}"
    setup = {"endpoint_url": endpoint, "region_name": "us-east-1",
             "aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}
    try:
        iam = boto3.client("iam", **setup)
        full = _user(iam, "genloop", ["*"])
        readonly = _user(iam, "reader", ["s3:List*", "s3:Get*", "s3:HeadBucket"])   # moto names HEAD bucket so
        boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10)   # from now on, sign or fail
        yield S3Server(endpoint, BUCKET, full["AccessKeyId"], full["SecretAccessKey"],
                       readonly["AccessKeyId"], readonly["SecretAccessKey"])
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)
        server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path):
    """The server's credentials in this test's environment only (nothing from ~/.aws)."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                 "GENLOOP_DVC_REMOTE", "GENLOOP_RESULTS_URL", "GENLOOP_BENTO_EXPORT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("GENLOOP_S3_ENDPOINT_URL", s3_server.endpoint)
    return s3_server


def files_containing(root, secret: str) -> list[str]:
    """Every file under `root` whose bytes contain `secret`."""
    needle = secret.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]
