"""genloop data add / status and training on an earlier data version (--data-rev)."""
import shutil
import subprocess

import pytest

from components.data.datasets import add_dataset, dataset_status
from components.data.hashing import folder_md5
from components.data.versioning import init_data, materialize_revision, md5_at_revision, recorded_md5
from components.errors import GenloopError
from tests.conftest import TINY_DCGAN, make_project


def _commit(root, message):
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message],
                   cwd=root, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def versioned(tmp_path_factory):
    from PIL import Image

    root = make_project(tmp_path_factory.mktemp("versioned"))
    init_data(root)
    first = _commit(root, "data v1")
    flat = tmp_path_factory.mktemp("flat")
    for i in range(5):
        Image.new("L", (8, 8), color=i * 40).save(flat / f"img{i}.png")
    info, data_md5 = add_dataset(root, flat, "mine")
    second = _commit(root, "data v2")
    return root, first, second, info, data_md5


def test_add_flat_image_folder(versioned):
    root, first, second, info, data_md5 = versioned
    assert info.kind == "image" and info.files == 5
    assert sorted(p.name for p in (root / "data" / "mine" / "all").iterdir()) == [f"img{i}.png" for i in range(5)]
    assert data_md5 == recorded_md5(root) == folder_md5(root / "data")
    assert md5_at_revision(root, first)[1] != data_md5


def test_status_lists_datasets_and_remote(versioned):
    root, *_ = versioned
    status = {d.name: d for d in dataset_status(root)}
    assert set(status) == {"digits", "pydocs", "mine"}
    assert status["mine"].files == 5 and status["mine"].in_remote is True
    assert status["pydocs"].kind == "text" and status["digits"].files == 1797


def test_bad_adds_change_nothing(versioned, tmp_path):
    root, *_ = versioned
    before = (root / "data.dvc").read_text()
    with pytest.raises(GenloopError, match="already exists"):
        add_dataset(root, root / "data" / "digits", "mine")
    with pytest.raises(GenloopError, match="does not exist"):
        add_dataset(root, tmp_path / "nope", "x")
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.txt").write_text("hi")
    (tmp_path / "mixed" / "b.png").write_bytes(b"x")
    with pytest.raises(GenloopError, match="mixes images and text"):
        add_dataset(root, tmp_path / "mixed", "mixed")
    assert (root / "data.dvc").read_text() == before and not (root / "data" / "mixed").exists()


def test_earlier_revision_comes_back_from_the_remote(versioned):
    root, first, second, *_ = versioned
    shutil.rmtree(root / ".dvc" / "cache", ignore_errors=True)      # force a fetch from the remote
    folder, sha, md5 = materialize_revision(root, first)
    assert sha == first and md5 == folder_md5(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["digits", "pydocs"]
    with pytest.raises(GenloopError, match="not a git revision"):
        materialize_revision(root, "no-such-rev")


@pytest.mark.slow
def test_run_on_an_earlier_data_revision(versioned, prefect_harness):
    from flows.training import retrain

    root, first, *_ = versioned
    summary = retrain(str(root), "configs/dcgan-digits.yaml",
                      {**TINY_DCGAN, "name": "dcgan-rev", "package": False}, data_rev=first)
    assert summary["data_rev"] == first
    assert summary["data_md5"] == md5_at_revision(root, first)[1]
