"""PNG encoding of the served images, with the standard library (zlib, struct).

Written here rather than through Pillow: for the small images genloop serves, Pillow's
per-call machinery (Image.fromarray, the plugin registry, the encoder's tile loop) costs
about 23 us an 8x8 image against 8 us here, and an images n=16 request spent 17% of the
event loop's time in it (py-spy, one client). The output is a plain PNG: 8-bit greyscale or
RGB, no interlace, filter 0 on every row, zlib level 6; any decoder reads it (tested
against Pillow's)."""
from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPE = {1: 0, 3: 2, 4: 6}           # channels -> PNG colour type: grey, RGB, RGBA


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


IEND = _chunk(b"IEND", b"")


def encode_png(pixels: np.ndarray) -> bytes:
    """(H, W) or (H, W, C) uint8, C in 1, 3, 4 -> PNG bytes."""
    if pixels.dtype != np.uint8:
        raise ValueError(f"encode_png: pixels must be uint8, got {pixels.dtype}.")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if pixels.ndim not in (2, 3) or channels not in COLOUR_TYPE or 0 in pixels.shape:
        raise ValueError(f"encode_png: expected (H, W) or (H, W, 1|3|4) pixels, got shape {pixels.shape}.")
    height, width = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).reshape(height, -1)
    raw = np.zeros((height, rows.shape[1] + 1), dtype=np.uint8)     # a filter-type byte (0) a row
    raw[:, 1:] = rows
    header = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPE[channels], 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + IEND


def encode_pngs(images_uint8) -> list[bytes]:
    """A batch (N, C, H, W) uint8 (a CPU torch tensor or an array) -> N PNGs."""
    pixels = images_uint8.numpy() if hasattr(images_uint8, "numpy") else np.asarray(images_uint8)
    return [encode_png(image) for image in pixels.transpose(0, 2, 3, 1)]
