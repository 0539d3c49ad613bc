"""One test per kind of bad data; each asserts the specific expectation is named."""
import shutil

import pytest

from components.config import RunConfig, build_dataclass
from components.validation.run import validate_dataset

TEXT = build_dataclass(RunConfig, {"data": {"kind": "text", "dataset": "pydocs"}})


@pytest.fixture
def digits(data_project, tmp_path):
    dest = tmp_path / "digits"
    shutil.copytree(data_project / "data" / "digits", dest)
    return dest


def failed(report) -> dict:
    return {(f.expectation, f.column): f for f in report.failures}


def check(folder, tmp_path, cfg=RunConfig()):
    snapshot = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    report = validate_dataset(folder, cfg, tmp_path / "report")
    assert snapshot == {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}   # untouched
    assert (tmp_path / "report" / "validation.json").is_file()
    return report


def test_good_digits_pass(digits, tmp_path):
    report = check(digits, tmp_path)
    assert report.success and report.rows == {"image_files": 1797} and not report.failures
    assert (tmp_path / "report" / "data_docs" / "index.html").is_file()


def test_good_corpus_passes(data_project, tmp_path):
    report = check(data_project / "data" / "pydocs", tmp_path, TEXT)
    assert report.success, report.summary()


@pytest.mark.parametrize("name,make", [
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[:30])),
    ("zero-byte", lambda p: p.write_bytes(b"")),
    ("text named .png", lambda p: p.write_text("not an image")),
])
def test_undecodable_files_are_listed(digits, tmp_path, name, make):
    make(digits / "3" / "0000.png")
    report = check(digits, tmp_path)
    failure = failed(report)[("expect_column_values_to_be_in_set", "decodes")]
    assert failure.examples == ["3/0000.png"] and failure.unexpected == 1
    assert "3/0000.png" in report.summary()


def test_rgba_image_in_a_grayscale_set(digits, tmp_path):
    from PIL import Image

    Image.new("RGBA", (8, 8)).save(digits / "5" / "rgba.png")
    assert failed(check(digits, tmp_path))[("expect_column_values_to_be_in_set", "mode")].examples == ["5/rgba.png"]


def test_wrong_size(digits, tmp_path):
    from PIL import Image

    Image.new("L", (9, 8)).save(digits / "4" / "big.png")
    bad = failed(check(digits, tmp_path))
    assert bad[("expect_column_values_to_be_between", "width")].examples == ["4/big.png"]
    assert ("expect_column_values_to_be_between", "height") not in bad


def test_empty_class_folder(digits, tmp_path):
    shutil.rmtree(digits / "7")
    (digits / "7").mkdir()
    failure = failed(check(digits, tmp_path))[("expect_column_distinct_values_to_contain_set", "label")]
    assert failure.examples == ["missing 7"]


def test_a_subset_of_the_classes_passes_only_with_all_classes_off(digits, tmp_path):
    for digit in "56789":
        shutil.rmtree(digits / digit)
    failure = failed(check(digits, tmp_path))[("expect_column_distinct_values_to_contain_set", "label")]
    assert sorted(failure.examples) == [f"missing {d}" for d in "56789"]
    subset = build_dataclass(RunConfig, {"validate": {"all_classes": False}})
    assert check(digits, tmp_path, subset).success
    (digits / "4").rename(digits / "4x")
    (digits / "4").mkdir()                           # an empty folder is still a missing class
    assert not check(digits, tmp_path, build_dataclass(RunConfig, {"data": {"labels": [*"012345678", "4x"]},
                                                                   "validate": {"all_classes": False}})).success


def test_single_class_dataset(digits, tmp_path):
    for d in digits.iterdir():
        if d.name != "1":
            shutil.rmtree(d)
    cfg = build_dataclass(RunConfig, {"data": {"labels": ["1"]}})
    bad = failed(check(digits, tmp_path, cfg))
    assert ("expect_column_unique_value_count_to_be_between", "label") in bad


def test_rare_class_and_duplicates(digits, tmp_path):
    for p in sorted((digits / "9").glob("*.png"))[10:]:
        p.unlink()                                   # class 9 drops to 10 of ~1630 files
    for i, p in enumerate(sorted((digits / "0").glob("*.png"))[:120]):
        shutil.copy(p, digits / "0" / f"copy{i}.png")
    bad = failed(check(digits, tmp_path))
    assert bad[("expect_column_values_to_be_between", "class_share")].examples[0].startswith("9/")
    duplicates = bad[("expect_column_values_to_be_in_set", "duplicate")]
    assert duplicates.unexpected == 120 and duplicates.examples[0].startswith("0/copy")


def test_unknown_label_folder(digits, tmp_path):
    shutil.copytree(digits / "1", digits / "x")
    assert failed(check(digits, tmp_path))[("expect_column_values_to_be_in_set", "label")].examples[0].startswith("x/")


def _corpus(tmp_path, blob: bytes):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "corpus.txt").write_bytes(blob)
    return folder


def test_invalid_utf8(tmp_path):
    folder = _corpus(tmp_path, b"ok \xff\xfe ok\n" * 2000)
    failure = failed(check(folder, tmp_path, TEXT))[("expect_column_values_to_be_in_set", "utf8")]
    assert failure.examples == ["corpus.txt (invalid UTF-8 at byte 3)"]


def test_empty_corpus(tmp_path):
    bad = failed(check(_corpus(tmp_path, b""), tmp_path, TEXT))
    assert ("expect_column_values_to_be_between", "chars") in bad
    assert ("expect_column_sum_to_be_between", "chars") in bad


def test_corpus_of_duplicated_lines(tmp_path):
    report = check(_corpus(tmp_path, b"the same line again and again\n" * 2000), tmp_path, TEXT)
    failure = failed(report)[("expect_column_values_to_be_in_set", "duplicate")]
    assert failure.unexpected == 1999 and failure.examples[0] == "corpus.txt:2"
