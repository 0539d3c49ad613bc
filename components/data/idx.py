"""IDX files (the format of MNIST and Fashion-MNIST), read and checked with numpy.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 size per dimension, then the data, row-major. The
MNIST family uses type 0x08 (unsigned byte): images are 3-d (count, rows, columns),
labels 1-d (count). Files may be gzipped; they are recognised by their first bytes, not
their suffix, so a renamed file still reads.

Every problem is one GenloopError line that names the file and what is wrong with it.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from components.errors import GenloopError

UNSIGNED_BYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"


def read_blob(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is a gzip file."""
    blob = Path(path).read_bytes()
    if not blob.startswith(GZIP_MAGIC):
        return blob
    try:
        return gzip.decompress(blob)
    except EOFError:
        raise GenloopError(f"{path}: the gzip stream is truncated (the file ends before the "
                           f"end-of-stream marker); get the file again.") from None
    except (OSError, zlib.error) as exc:         # gzip.BadGzipFile is an OSError
        raise GenloopError(f"{path}: the gzip data is corrupt ({exc}); get the file again.") from None


def expected_magic(dims: int) -> int:
    return (UNSIGNED_BYTE << 8) | dims


def read_idx(path: Path, dims: int) -> "numpy.ndarray":  # noqa: F821
    """An unsigned-byte IDX file of `dims` dimensions as a uint8 array of the shape its
    header gives; wrong magic, a short or over-long file are errors."""
    import numpy as np

    path = Path(path)
    blob = read_blob(path)
    header = 4 + 4 * dims
    if len(blob) < 4:
        raise GenloopError(f"{path}: truncated: {len(blob)} bytes, not even the 4-byte IDX magic number.")
    magic = int.from_bytes(blob[:4], "big")
    if magic != expected_magic(dims):
        raise GenloopError(f"{path}: magic number 0x{magic:08x} is not that of an IDX file of unsigned "
                           f"bytes with {dims} dimension(s) (0x{expected_magic(dims):08x}); is it the "
                           f"right file?")
    if len(blob) < header:
        raise GenloopError(f"{path}: truncated inside the header ({len(blob)} of {header} bytes).")
    shape = struct.unpack(f">{dims}I", blob[4:header])
    if 0 in shape:
        raise GenloopError(f"{path}: the header gives an empty shape {shape}; the file holds no data.")
    size = int(np.prod(shape, dtype=np.int64))
    held = len(blob) - header
    if held < size:
        raise GenloopError(f"{path}: truncated: the header promises shape {shape} ({size} bytes of data) "
                           f"but the file holds {held}; get the file again.")
    if held > size:
        raise GenloopError(f"{path}: {held - size} bytes follow the {size} bytes of data its header "
                           f"{shape} describes; the file is damaged or not an IDX file.")
    return np.frombuffer(blob, dtype=np.uint8, count=size, offset=header).reshape(shape)


def read_labelled_images(images_path: Path, labels_path: Path, num_classes: int
                         ) -> tuple["numpy.ndarray", "numpy.ndarray"]:  # noqa: F821
    """(images (N, rows, cols) uint8, labels (N,) uint8) from an images/labels IDX pair:
    the counts must match and every label must be a class index below `num_classes`."""
    import numpy as np

    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise GenloopError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                           f"{len(labels)} labels; the two files must come from the same split.")
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise GenloopError(f"{labels_path}: label {int(labels[bad[0]])} at index {int(bad[0])} is out of "
                           f"range 0..{num_classes - 1} ({bad.size} such labels); is it the right file?")
    return images, labels
