"""What the server writes: PNGs (components/serving/png.py) and the serving log
(components/serving/servelog.py), read back by Pillow and by the monitor's reader."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from components.monitoring.logs import read_serving_log
from components.serving.png import encode_png
from components.serving.servelog import ServingLog


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 1), (28, 28), (32, 32, 3), (5, 7, 4), (1, 1)])
def test_encode_png_is_read_back_pixel_for_pixel(shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    image = Image.open(io.BytesIO(encode_png(pixels)))
    assert image.mode == {2: "L", 1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[2] if pixels.ndim == 3 else 2]
    back = np.asarray(image)
    assert np.array_equal(back, pixels[:, :, 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels)


def test_encode_png_refuses_what_it_cannot_write():
    with pytest.raises(ValueError, match="must be uint8"):
        encode_png(np.zeros((8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="got shape \\(8, 8, 2\\)"):
        encode_png(np.zeros((8, 8, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="got shape \\(0, 8\\)"):
        encode_png(np.zeros((0, 8), dtype=np.uint8))


def test_serving_log_writes_bentoml_monitors_layout_one_line_per_row(tmp_path):
    log = ServingLog(tmp_path, worker=3)
    rows = [{"label": "7", "mean_intensity": 0.25, "timestamp": "mine"}, {"label": "1", "mean_intensity": 0.5,
                                                                          "timestamp": "mine"}]
    log.write(rows, {"mean_intensity": "prediction"}, request_id="11", trace_id="22")
    log.write([{"label": "2", "mean_intensity": 0.75, "timestamp": "x"}], request_id="12", trace_id="23")
    log.write([])                                               # nothing generated: nothing logged
    log.close()
    data = tmp_path / "genloop_generations" / "data" / "data.3.log"
    lines = [json.loads(line) for line in data.read_text().splitlines()]
    assert [(r["label"], r["request_id"], r["trace_id"], r["timestamp_"]) for r in lines] == [
        ("7", "11", "22", "mine"), ("1", "11", "22", "mine"), ("2", "12", "23", "x")]
    assert lines[0]["timestamp"] == lines[1]["timestamp"] != "mine"     # one time stamp a request
    schema = (tmp_path / "genloop_generations" / "schema" / "schema.3.log").read_text().splitlines()
    assert len(schema) == 1                                     # written once
    assert {"name": "label", "role": "prediction", "type": "categorical"} in json.loads(schema[0])["columns"]
    frame = read_serving_log(tmp_path)                          # what the monitor reads
    assert list(frame["label"]) == ["7", "1", "2"] and list(frame["request_id"]) == ["11", "11", "12"]


def test_serving_log_outside_a_request_records_no_ids(tmp_path):
    log = ServingLog(tmp_path, worker=0)
    log.write([{"label": "3"}])
    log.close()
    line = json.loads((tmp_path / "genloop_generations" / "data" / "data.0.log").read_text())
    assert line["request_id"] == "None" and line["label"] == "3"


def test_serving_log_fails_at_start_on_a_folder_it_cannot_write_and_raises_on_a_failed_write(tmp_path):
    from components.errors import GenloopError

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(GenloopError, match="cannot write the serving log under .*GENLOOP_MONITOR_DIR"):
        ServingLog(blocked / "logs", worker=0).open()
    log = ServingLog(tmp_path / "logs", worker=0).open()

    class Full:
        def write(self, text):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

        def close(self):
            pass

    log._handler.stream = Full()
    with pytest.raises(OSError, match="No space left"):       # the caller fails the request
        log.write([{"label": "3"}])
