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


@pytest.mark.parametrize("channels", [1, 3])
def test_encode_pngs_encodes_each_image_of_an_nchw_batch(channels):
    import torch

    from components.serving.png import encode_pngs

    batch = torch.randint(0, 256, (3, channels, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    pngs = encode_pngs(batch)
    assert len(pngs) == 3 and encode_pngs(batch.numpy()) == pngs
    for png, image in zip(pngs, batch):
        back = np.asarray(Image.open(io.BytesIO(png)))
        assert np.array_equal(back.reshape(5, 7, channels), image.permute(1, 2, 0).numpy())


def _idat(png: bytes) -> bytes:
    at = png.index(b"IDAT")
    return png[at + 4:at + 4 + int.from_bytes(png[at - 4:at], "big")]


def test_small_pngs_carry_stored_deflate_blocks_and_larger_ones_compressed():
    """Up to STORED_UP_TO scanline bytes the zlib stream is one stored block (no compressor
    set-up per image); above it, level-6 deflate. Both inflate to the filtered scanlines."""
    import zlib

    from components.serving.png import STORED_UP_TO

    rng = np.random.default_rng(2)
    for shape in [(8, 8), (8, 8, 3), (1, 255), (1, 256), (28, 28)]:      # 256 scanline bytes, then 257
        pixels = rng.integers(0, 4, shape, dtype=np.uint8)       # compressible: deflate would gain
        scanlines = np.concatenate([np.zeros((shape[0], 1), np.uint8), pixels.reshape(shape[0], -1)], 1).tobytes()
        stream = _idat(encode_png(pixels))
        assert zlib.decompress(stream) == scanlines
        stored = len(scanlines) <= STORED_UP_TO
        assert stored == (shape not in [(28, 28), (1, 256)])
        block_type = (stream[2] >> 1) & 0b11        # the first block's BTYPE: 00 stored
        assert (block_type == 0) == stored
        if stored:                                  # BFINAL=1, then LEN and NLEN, the bytes, adler32
            assert stream[2] == 1 and len(stream) == 2 + 5 + len(scanlines) + 4
    assert len(_idat(encode_png(np.zeros((28, 28), np.uint8)))) < 60     # deflate's gain where it counts


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


def test_serving_log_rows_keep_numpy_numbers_and_non_ascii_text(tmp_path):
    log = ServingLog(tmp_path, worker=0)
    log.write([{"label": "çà 7", "mean_intensity": np.float32(0.5), "count": np.int64(3), "ink": 0.1 + 0.2}],
              request_id="1", trace_id="2")
    log.close()
    line = read_serving_log(tmp_path).iloc[0]                    # what the monitor reads (UTF-8)
    assert line["label"] == "çà 7" and line["mean_intensity"] == 0.5 and line["count"] == 3
    assert line["ink"] == 0.1 + 0.2                              # floats round-trip exactly


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


def test_to_uint8_numpy_path_equals_torchs_rounding():
    """to_uint8 takes numpy for CPU float tensors (a server's batch-1 images): the same pixels
    as the torch arithmetic, halves to even, out-of-range values clamped."""
    import torch

    from components.data.images import to_uint8

    x = torch.cat([torch.linspace(-1.5, 1.5, 4001), torch.tensor([-1.0, 1.0, 1 / 127.5 - 1, 0.5 / 127.5 - 1])])
    x = x.reshape(1, 1, 1, -1)
    def torch_path(t):
        return ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

    for t in (x, x.double()):
        assert torch.equal(to_uint8(t), torch_path(t)) and to_uint8(t).dtype == torch.uint8
    assert to_uint8(x).flatten()[-4:].tolist() == [0, 255, 1, 0]         # 0.5 rounds to even: 0
    grads = x.clone().requires_grad_(True)                    # the torch path still serves autograd inputs
    assert torch.equal(to_uint8(grads), torch_path(x))


def test_image_stats_are_the_per_image_mean_std_and_ink_share():
    import torch

    from components.monitoring.features import image_features, image_stats

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 7, 9), dtype=torch.uint8, generator=gen)
    images[0] = 200                                           # a constant image: std 0
    flat = images.double().reshape(5, -1) / 255.0
    stats = image_stats(images)
    for row, ref in zip(stats, flat):
        assert row["mean_intensity"] == pytest.approx(ref.mean().item(), abs=1e-12)
        assert row["std_intensity"] == pytest.approx(ref.std().item(), abs=1e-9)      # sample std
        assert row["ink_fraction"] == pytest.approx((ref > 0.5).double().mean().item(), abs=1e-12)
    assert stats[0]["std_intensity"] == 0.0 and stats[0]["ink_fraction"] == 1.0
    assert image_stats(images.numpy()) == stats               # arrays as well as tensors
    assert [r["label"] for r in image_features(images, list("abcde"))] == list("abcde")
    many = torch.randint(0, 256, (300, 1, 4, 4), dtype=torch.uint8, generator=gen)     # 300 histograms at once
    assert image_stats(many) == [image_stats(one[None])[0] for one in many]
    assert image_stats(many[:17]) == image_stats(many)[:17]
    with pytest.raises(ValueError, match="expected uint8 pixels"):
        image_stats(images.float())
