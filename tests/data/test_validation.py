import shutil

import pytest

from components.config import DataConfig
from components.validation.run import validate_dataset


@pytest.fixture
def digits_copy(data_project, tmp_path):
    dest = tmp_path / "digits"
    shutil.copytree(data_project / "data" / "digits", dest)
    return dest


def test_good_digits_pass(digits_copy, tmp_path):
    report = validate_dataset(digits_copy, DataConfig(), tmp_path / "report")
    assert report.success and report.rows == 1797 and not report.failures
    assert (tmp_path / "report" / "validation.json").is_file()
    assert (tmp_path / "report" / "data_docs" / "index.html").is_file()


def test_bad_images_are_named_with_their_files(digits_copy, tmp_path):
    from PIL import Image

    png = digits_copy / "3" / "0000.png"
    png.write_bytes(png.read_bytes()[:30])                               # truncated
    Image.new("L", (9, 9)).save(digits_copy / "4" / "big.png")           # wrong size
    Image.new("RGBA", (8, 8)).save(digits_copy / "5" / "rgba.png")       # wrong mode
    (digits_copy / "6" / "note.png").write_text("not an image")          # text named .png
    report = validate_dataset(digits_copy, DataConfig(), tmp_path / "report")
    assert not report.success
    by_column = {(f.expectation, f.column): f for f in report.failures}
    decodes = by_column[("expect_column_values_to_be_in_set", "decodes")]
    assert set(decodes.examples) == {"3/0000.png", "6/note.png"}
    assert by_column[("expect_column_values_to_be_between", "width")].examples[0] == "4/big.png"
    assert "5/rgba.png" in by_column[("expect_column_values_to_be_in_set", "mode")].examples
    assert "4/big.png" in report.summary() and "decodes" in report.summary()


def test_unknown_label_folder_fails(digits_copy, tmp_path):
    shutil.copytree(digits_copy / "1", digits_copy / "x")
    report = validate_dataset(digits_copy, DataConfig(), tmp_path / "report")
    failure = [f for f in report.failures if f.column == "label"]
    assert failure and failure[0].examples[0].startswith("x/")


def test_text_invalid_utf8_and_tiny_corpus_fail(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "corpus.txt").write_bytes(b"hello \xff\xfe world\n")
    report = validate_dataset(corpus, DataConfig(kind="text"), tmp_path / "report")
    names = {f.expectation for f in report.failures}
    assert not report.success
    assert "expect_column_values_to_be_in_set" in names and "expect_column_sum_to_be_between" in names
