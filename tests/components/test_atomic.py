import pytest

from components.atomic import atomic_dir


def test_failed_write_leaves_the_old_directory_intact(tmp_path):
    dest = tmp_path / "ckpt"
    with atomic_dir(dest) as tmp:
        (tmp / "weights").write_text("good")
    with pytest.raises(RuntimeError):
        with atomic_dir(dest) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("killed mid-write")
    assert (dest / "weights").read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]      # no temp dirs left behind
    with atomic_dir(dest) as tmp:
        (tmp / "weights").write_text("new")
    assert (dest / "weights").read_text() == "new"
