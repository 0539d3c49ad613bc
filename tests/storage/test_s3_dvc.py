"""The S3 DVC remote (GENLOOP_DVC_REMOTE) against a local S3 server: push, pull into a fresh
clone, bad settings that leave nothing behind, and credentials that never reach a file."""
from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.slow

from components.data.hashing import folder_md5
from components.errors import GenloopError
from tests.conftest import make_project
from tests.storage.conftest import files_containing, free_port

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]


def _corpus(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}.txt"
    path.write_text(text * 50)
    return path


def _snapshot(root):
    cache = root / ".dvc" / "cache"
    return ((root / "data.dvc").read_bytes(), sorted(p.relative_to(cache) for p in cache.rglob("*") if p.is_file()),
            sorted(p.name for p in (root / "data").iterdir()))


@pytest.fixture
def s3_project(s3, tmp_path, monkeypatch):
    """A project whose data/ holds one text dataset, pushed to s3://BUCKET/<test>/dvc."""
    from components.data.datasets import add_dataset

    monkeypatch.setenv("GENLOOP_DVC_REMOTE", f"s3://{s3.bucket}/{tmp_path.name}/dvc")
    root = make_project(tmp_path / "origin")
    add_dataset(root, _corpus(tmp_path, "first", "the quick brown fox\n"), "first")
    return root


def test_push_to_s3_then_pull_into_a_fresh_clone(s3, s3_project, tmp_path, capfd):
    from components.data.versioning import _dvc, ensure_repo, recorded_md5
    from components.storage import dvc_remote, list_keys

    root = s3_project
    md5 = recorded_md5(root)
    keys = list_keys(dvc_remote())
    assert any(k.endswith(".dir") for k in keys) and len(keys) >= 2, keys
    assert not any((root / ".genloop" / "dvc-remote").rglob("*.dir"))    # went to S3, not the local disk
    local = (root / ".dvc" / "config.local").read_text()
    assert dvc_remote().url in local and s3.endpoint in local

    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True, capture_output=True)
    subprocess.run([*GIT, "commit", "-qm", "data"], cwd=root, check=True, capture_output=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    assert not (clone / "data").exists() and not (clone / ".dvc" / "cache").exists()
    ensure_repo(clone)                       # the same env selects the same remote on this machine
    _dvc(clone, "pull", "-q")
    assert folder_md5(clone / "data") == md5
    assert (clone / "data" / "first" / "first.txt").read_text() == (root / "data" / "first" / "first.txt").read_text()

    out = capfd.readouterr()
    for secret in (s3.secret,):
        assert secret not in out.out + out.err
        assert not files_containing(root, secret) and not files_containing(clone, secret)


@pytest.mark.parametrize("bad", ["unreachable endpoint", "wrong credentials", "missing bucket", "no credentials"])
def test_bad_s3_settings_fail_in_one_line_and_change_nothing(s3, s3_project, tmp_path, monkeypatch, bad):
    from components.data.datasets import add_dataset

    root = s3_project
    before = _snapshot(root)
    config = (root / ".dvc" / "config.local").read_text()
    if bad == "unreachable endpoint":
        monkeypatch.setenv("GENLOOP_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    elif bad == "wrong credentials":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-" + s3.secret[:4])
    elif bad == "missing bucket":
        monkeypatch.setenv("GENLOOP_DVC_REMOTE", "s3://no-such-bucket/dvc")
    else:
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(GenloopError) as err:
        add_dataset(root, _corpus(tmp_path, "second", "jumps over the lazy dog\n"), "second")
    message = str(err.value)
    assert "\n" not in message and s3.secret not in message, message
    expected = {"unreachable endpoint": "cannot reach", "wrong credentials": "refused the credentials",
                "missing bucket": "does not exist", "no credentials": "no usable AWS credentials"}[bad]
    assert expected in message, message
    assert _snapshot(root) == before
    assert (root / ".dvc" / "config.local").read_text() == config


def test_a_push_that_fails_midway_rolls_back_data_dvc_and_the_cache(s3, s3_project, tmp_path, monkeypatch):
    """A read-only key passes the bucket check but cannot upload: `dvc add` is undone."""
    from components.data.datasets import add_dataset

    root = s3_project
    before = _snapshot(root)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.readonly_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.readonly_secret)
    with pytest.raises(GenloopError, match="dvc push") as err:
        add_dataset(root, _corpus(tmp_path, "second", "jumps over the lazy dog\n"), "second")
    assert s3.readonly_secret not in str(err.value) and s3.secret not in str(err.value)
    assert _snapshot(root) == before


def test_unsetting_the_variable_returns_to_the_local_remote(s3, s3_project, monkeypatch):
    from components.data.versioning import _local_config, ensure_repo

    monkeypatch.delenv("GENLOOP_DVC_REMOTE")
    ensure_repo(s3_project)
    assert _local_config(s3_project).get("core", {}).get("remote") is None
    assert "s3://" not in (s3_project / ".dvc" / "config").read_text()
