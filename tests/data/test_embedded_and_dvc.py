import subprocess
import sys

from components.data.embedded import digits_png_files, pydocs_files, write_dataset
from components.data.hashing import folder_md5
from components.data.versioning import init_data, recorded_md5


def test_embedded_data_is_byte_reproducible(tmp_path):
    digits = digits_png_files()
    assert len(digits) == 1797 and {k.split("/")[0] for k in digits} == {str(i) for i in range(10)}
    assert digits == digits_png_files()
    assert len(pydocs_files()["corpus.txt"]) > 100_000
    assert write_dataset(digits, tmp_path / "digits") is True
    before = folder_md5(tmp_path / "digits")
    assert write_dataset(digits, tmp_path / "digits") is False      # identical: untouched
    assert folder_md5(tmp_path / "digits") == before


def test_data_init_versions_with_dvc_and_is_clean(data_project):
    root = data_project
    md5 = recorded_md5(root)
    assert md5 == folder_md5(root / "data")            # our hash is DVC's directory hash
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=root,
                            capture_output=True, text=True, check=True)
    assert status.stdout.strip() in ("{}", "")
    remote = root / ".genloop" / "dvc-remote" / "files" / "md5"
    assert (remote / md5[:2] / (md5[2:] + ".dir")).is_file()
    dvc_file = (root / "data.dvc").read_text()
    again = init_data(root)                             # a second init changes nothing
    assert again.matches_dvc and not any(again.changed.values())
    assert (root / "data.dvc").read_text() == dvc_file
