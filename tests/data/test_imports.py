"""genloop data import: Fashion-MNIST from IDX files the tests write, and the Python
standard-library corpus from a small fake stdlib folder."""

import numpy as np
import pytest

from components.data.hashing import folder_md5
from components.data.imports import (FASHION_MNIST_CLASSES, import_fashion_mnist, import_python_stdlib,
                                     read_fashion_mnist, stdlib_corpus, write_fashion_mnist)
from components.errors import GenloopError
from tests.conftest import make_project
from tests.data.fake_idx import NAMES, fake_split, idx_bytes, write_fashion_mnist_idx, write_idx


def _leftovers(folder):
    """Anything an import may have left behind: hidden temp dirs beside data/NAME."""
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# Fashion-MNIST: reading and writing ----------------------------------------------------------

def test_writes_class_folders_byte_reproducibly_from_gz_and_plain(tmp_path):
    plain = write_fashion_mnist_idx(tmp_path / "plain", train_per_class=3, test_per_class=2)
    packed = write_fashion_mnist_idx(tmp_path / "gz", train_per_class=3, test_per_class=2, gz=True)
    write_fashion_mnist(read_fashion_mnist(plain), tmp_path / "a" / "fashion")
    write_fashion_mnist(read_fashion_mnist(plain), tmp_path / "b" / "fashion")
    write_fashion_mnist(read_fashion_mnist(packed), tmp_path / "c" / "fashion")
    out = tmp_path / "a" / "fashion"
    assert sorted(p.name for p in out.iterdir()) == ["test", "train"]
    for split, per_class in (("train", 3), ("test", 2)):
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(FASHION_MNIST_CLASSES)
        assert all(len(list((out / split / c).iterdir())) == per_class for c in FASHION_MNIST_CLASSES)
    md5s = {folder_md5(tmp_path / x / "fashion") for x in "abc"}
    assert len(md5s) == 1                                     # same input -> same bytes, gz or not


def test_pngs_hold_the_idx_pixels_under_their_label(tmp_path):
    from PIL import Image

    src = write_fashion_mnist_idx(tmp_path / "src", train_per_class=2, test_per_class=1)
    write_fashion_mnist(read_fashion_mnist(src), tmp_path / "out")
    images, labels = fake_split(2, seed=0)
    for index in (0, 7, len(labels) - 1):
        path = tmp_path / "out" / "train" / FASHION_MNIST_CLASSES[labels[index]] / f"{index:05d}.png"
        with Image.open(path) as img:
            assert img.mode == "L" and img.size == (28, 28) and not img.info    # no metadata chunks
            assert np.array_equal(np.asarray(img), images[index])


def _break(folder, stem, blob):
    (folder / stem).write_bytes(blob)


@pytest.mark.parametrize("damage, message", [
    ("truncated", r"train-images-idx3-ubyte: truncated: the header promises shape \(30, 28, 28\)"),
    ("truncated_gz", r"train-images-idx3-ubyte.gz: the gzip stream is truncated"),
    ("header_only", r"train-images-idx3-ubyte: truncated inside the header"),
    ("wrong_magic", r"train-images-idx3-ubyte: magic number 0x00000801 .* 3 dimension"),
    ("count_mismatch", r"holds 30 images but .*train-labels-idx1-ubyte holds 29 labels"),
    ("label_range", r"train-labels-idx1-ubyte: label 10 at index 4 is out of range 0..9"),
    ("trailing", r"t10k-labels-idx1-ubyte: 3 bytes follow the 20 bytes of data"),
])
def test_bad_idx_files_are_one_clear_line(tmp_path, damage, message):
    src = write_fashion_mnist_idx(tmp_path / "src", gz=damage == "truncated_gz")
    images, labels = NAMES["train"]
    if damage == "truncated":
        blob = (src / images).read_bytes()
        _break(src, images, blob[:-100])
    elif damage == "truncated_gz":
        blob = (src / f"{images}.gz").read_bytes()
        _break(src, f"{images}.gz", blob[: len(blob) // 2])
    elif damage == "header_only":
        _break(src, images, (src / images).read_bytes()[:10])
    elif damage == "wrong_magic":
        _break(src, images, (src / labels).read_bytes())          # a labels file where images belong
    elif damage == "count_mismatch":
        write_idx(src / labels, fake_split(3)[1][:29])
    elif damage == "label_range":
        bad = fake_split(3)[1].copy()
        bad[4] = 10
        write_idx(src / labels, bad)
    elif damage == "trailing":
        test_labels = src / NAMES["test"][1]
        test_labels.write_bytes(test_labels.read_bytes() + b"\0\0\0")
    with pytest.raises(GenloopError, match=message) as err:
        read_fashion_mnist(src)
    assert "\n" not in str(err.value)


def test_missing_files_say_how_to_get_them(tmp_path):
    (tmp_path / "src").mkdir()
    write_idx(tmp_path / "src" / NAMES["train"][0], fake_split(1)[0])
    with pytest.raises(GenloopError) as err:
        read_fashion_mnist(tmp_path / "src")
    text = str(err.value)
    assert "train-labels-idx1-ubyte" in text and "train-images-idx3-ubyte," not in text
    assert "sudo apt-get install dataset-fashion-mnist" in text and "--from DIR" in text and "\n" not in text


def test_splits_of_different_sizes_are_refused(tmp_path):
    src = write_fashion_mnist_idx(tmp_path / "src")
    write_idx(src / NAMES["test"][0], fake_split(2, size=32, seed=1)[0])
    with pytest.raises(GenloopError, match="different sizes"):
        read_fashion_mnist(src)


# Fashion-MNIST into a project -----------------------------------------------------------------

def test_failures_leave_nothing_behind(tmp_path, monkeypatch):
    import components.data.imports as imports

    root = make_project(tmp_path / "p")
    src = write_fashion_mnist_idx(tmp_path / "src")
    (src / NAMES["test"][1]).write_bytes(idx_bytes(fake_split(2, seed=1)[1])[:-1])     # truncated labels
    with pytest.raises(GenloopError, match="truncated"):
        import_fashion_mnist(root, src)
    assert _leftovers(root / "data") == [] and not (root / "data.dvc").exists()
    write_idx(src / NAMES["test"][1], fake_split(2, seed=1)[1])                        # repaired
    calls = []

    def failing_png(pixels):
        calls.append(1)
        if len(calls) > 25:
            raise OSError("disk full")
        return real_png(pixels)

    real_png = imports.png_bytes
    monkeypatch.setattr(imports, "png_bytes", failing_png)
    with pytest.raises(OSError, match="disk full"):
        import_fashion_mnist(root, src)
    assert _leftovers(root / "data") == [] and not (root / "data.dvc").exists()


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A project with a small Fashion-MNIST imported, then a small stdlib corpus."""
    tmp = tmp_path_factory.mktemp("imports")
    root = make_project(tmp / "p")
    src = write_fashion_mnist_idx(tmp / "src", gz=True)
    fashion = import_fashion_mnist(root, src)
    dvc_after_fashion = (root / "data.dvc").read_text()
    stdlib = import_python_stdlib(root, stdlib=_fake_stdlib(tmp / "stdlib"))
    return root, src, fashion, dvc_after_fashion, stdlib


def test_import_is_versioned_with_dvc(imported):
    from components.data.datasets import dataset_status
    from components.data.versioning import recorded_md5

    root, _, fashion, dvc_after_fashion, stdlib = imported
    assert fashion.files == 50 and fashion.details == {"source": str(root.parent / "src"), "image_size": [28, 28],
                                                       "train": 30, "test": 20}
    assert fashion.md5 == folder_md5(root / "data" / "fashion-mnist")
    assert stdlib.data_md5 != fashion.data_md5                         # data.dvc moved with each import
    assert stdlib.data_md5 == recorded_md5(root) == folder_md5(root / "data")
    assert dvc_after_fashion != (root / "data.dvc").read_text()
    status = {d.name: d for d in dataset_status(root)}
    assert status["fashion-mnist"].in_remote and status["python-stdlib"].in_remote
    assert status["python-stdlib"].kind == "text"


def test_existing_dataset_is_never_overwritten(imported):
    root, src, fashion, *_ = imported
    before = (root / "data.dvc").read_text()
    with pytest.raises(GenloopError, match="data/fashion-mnist already exists"):
        import_fashion_mnist(root, src)
    with pytest.raises(GenloopError, match="data/python-stdlib already exists"):
        import_python_stdlib(root, stdlib=root)
    assert folder_md5(root / "data" / "fashion-mnist") == fashion.md5 and (root / "data.dvc").read_text() == before


def test_imported_splits_serve_as_training_set_and_fid_reference(imported, tmp_path):
    from components.config import load_config
    from components.evaluation.run import reference_dir
    from components.paths import ProjectPaths

    root, *_ = imported
    cfg = load_config(root / "configs" / "dcgan-fashion.yaml")
    paths = ProjectPaths.at(root)
    train = root / "data" / cfg.data.dataset
    files = sorted(train.rglob("*.png"))
    assert reference_dir(cfg, files, paths) == root / "data" / "fashion-mnist" / "test"
    checked_out = tmp_path / "rev" / "fashion-mnist" / "train" / "Bag" / "00001.png"     # a --data-rev copy
    assert reference_dir(cfg, [checked_out], paths) == tmp_path / "rev" / "fashion-mnist" / "test"
    assert reference_dir(cfg, None, paths) == paths.data / "fashion-mnist" / "test"


def test_heldout_fid_reads_the_reference_split(imported, monkeypatch):
    import components.monitoring.embeddings as embeddings
    from components.config import load_config
    from components.evaluation.run import heldout_fid
    from components.paths import ProjectPaths

    root, *_ = imported
    seen = []

    def fake_embeddings(files, channels, cache, device="cpu"):      # no Inception in a unit test
        seen.extend(files)
        return np.stack([np.full(4, float(sum(f.read_bytes()) % 97)) for f in files]), len(files)

    monkeypatch.setattr(embeddings, "image_embeddings", fake_embeddings)
    cfg = load_config(root / "configs" / "dcgan-fashion.yaml", {"evaluate.reference_samples": 12})
    paths = ProjectPaths.at(root)
    fake = np.random.default_rng(0).normal(size=(16, 4))
    out = heldout_fid(fake, cfg, root / "data" / "fashion-mnist" / "test", paths, "cpu")
    assert out["heldout_reference"] == {"dataset": "fashion-mnist/test", "samples": 12,
                                        "dataset_md5": folder_md5(root / "data" / "fashion-mnist" / "test")}
    assert np.isfinite(out["fid_heldout"]) and len(seen) == 12
    assert all("fashion-mnist/test/" in f.as_posix() for f in seen)
    with pytest.raises(GenloopError, match="no images under .*fashion-mnist/nope.*genloop data import"):
        heldout_fid(fake, cfg, root / "data" / "fashion-mnist" / "nope", paths, "cpu")


# the Python standard library ----------------------------------------------------------------

def _fake_stdlib(folder):
    files = {
        "json/__init__.py": "import json.decoder\n",
        "json/decoder.py": "class JSONDecodeError(ValueError):\n    pass\n",
        "abc.py": "def abstractmethod(f):\n    return f\n",
        "zlast.py": "x = 1",                                  # no final newline
        "site-packages/numpy/core.py": "not stdlib\n",
        "test/test_abc.py": "import abc\n",
        "unittest/test/test_case.py": "import unittest\n",
        "idlelib/idle_test/test_x.py": "pass\n",
        "__pycache__/abc.cpython-311.py": "cached\n",
        "notes.txt": "not python\n",
        "huge.py": "# " + "x" * 600_000 + "\n",
    }
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    (folder / "latin1.py").write_bytes("# caf\xe9\n".encode("latin-1"))
    return folder


def test_stdlib_corpus_is_deterministic_and_skips_what_is_not_library_code(tmp_path):
    stdlib = _fake_stdlib(tmp_path / "lib")
    corpus, details = stdlib_corpus(stdlib)
    assert corpus == stdlib_corpus(stdlib)[0]
    text = corpus.decode("utf-8")
    headers = [line for line in text.splitlines() if line.startswith("# file: ")]
    assert headers == ["# file: abc.py", "# file: json/__init__.py", "# file: json/decoder.py", "# file: zlast.py"]
    assert text.endswith("# file: zlast.py\nx = 1\n\n")
    assert details["source_files"] == 4 and details["bytes"] == len(corpus)
    assert details["skipped"] == {"files not in UTF-8": 1, "files over 500000 bytes": 1, "test-suite folders": 3}


def test_stdlib_max_bytes_keeps_a_prefix_of_whole_files(tmp_path):
    stdlib = _fake_stdlib(tmp_path / "lib")
    full, _ = stdlib_corpus(stdlib)
    first_two = len("# file: abc.py\ndef abstractmethod(f):\n    return f\n\n"
                    "# file: json/__init__.py\nimport json.decoder\n\n")
    part, details = stdlib_corpus(stdlib, max_bytes=first_two + 5)
    assert len(part) == first_two and full.startswith(part)
    assert details["skipped"]["files past --max-bytes"] == 2
    with pytest.raises(GenloopError, match="raise --max-bytes"):
        stdlib_corpus(stdlib, max_bytes=10)
    with pytest.raises(GenloopError, match="--max-bytes must be > 0"):
        stdlib_corpus(stdlib, max_bytes=0)


def test_the_running_pythons_stdlib_builds(imported):
    corpus, details = stdlib_corpus(max_bytes=300_000)
    text = corpus.decode("utf-8")
    assert 0 < len(corpus) <= 300_000 and details["source_files"] > 3
    assert "# file: site-packages/" not in text and "# file: test/" not in text
    root, *_, stdlib = imported
    assert (root / "data" / "python-stdlib" / "corpus.txt").read_bytes() == stdlib_corpus(root.parent / "stdlib")[0]
    assert stdlib.details["source_files"] == 4 and stdlib.size == stdlib.details["bytes"]


# the command line ---------------------------------------------------------------------------

def _genloop(args, cwd):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_imports_and_reports(tmp_path):
    root = make_project(tmp_path / "p")
    out = _genloop(["data", "import", "fashion-mnist", "--from", str(tmp_path / "nowhere")], root)
    assert out.returncode != 0 and "Traceback" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1 and "apt-get install dataset-fashion-mnist" in out.stderr
    src = write_fashion_mnist_idx(tmp_path / "src")
    out = _genloop(["data", "import", "fashion-mnist", "--from", str(src), "--name", "fm"], root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "data/fm: 30 train and 20 test images of 28x28" in out.stdout and "50 files" in out.stdout
    assert sorted(p.name for p in (root / "data" / "fm").iterdir()) == ["test", "train"]
