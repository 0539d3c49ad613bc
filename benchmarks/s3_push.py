"""Issue 12 figure: `genloop data add` (copy into data/NAME, `dvc add data`, `dvc push`) of
N small files to an S3 remote on a local S3 server (moto's ThreadedMotoServer on 127.0.0.1)
vs to the default local-disk remote, each into a fresh project. Same files, same code path
(components.data.datasets.add_dataset); only GENLOOP_DVC_REMOTE differs.

Usage: .venv/bin/python benchmarks/s3_push.py [n_files]   (default 10,000)
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

BUCKET = "genloop-bench"


def make_files(dest: Path, n: int) -> None:
    """n distinct ~1 KB text files (distinct, so DVC cannot deduplicate them)."""
    for i in range(n):
        folder = dest / f"part{i // 1000:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}.txt").write_text(f"sample {i}\n" + "lorem ipsum dolor sit amet " * 40)


def project(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    return path


def timed_add(root: Path, src: Path) -> float:
    from components.data.datasets import add_dataset
    from components.data.versioning import ensure_repo

    ensure_repo(root)                       # `dvc init` and remote setup are not part of the figure
    start = time.perf_counter()
    add_dataset(root, src, "bench")
    return time.perf_counter() - start


def start_s3() -> tuple[object, str]:
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
                       "AWS_DEFAULT_REGION": "us-east-1", "GENLOOP_S3_ENDPOINT_URL": endpoint})
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    return server, endpoint


def main(n: int) -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)     # moto's per-request lines
    with tempfile.TemporaryDirectory(prefix="genloop-s3-bench-") as tmp:
        tmp = Path(tmp)
        make_files(tmp / "src", n)
        os.environ.pop("GENLOOP_DVC_REMOTE", None)
        local = timed_add(project(tmp / "local"), tmp / "src")
        server, endpoint = start_s3()
        try:
            os.environ["GENLOOP_DVC_REMOTE"] = f"s3://{BUCKET}/dvc"
            s3 = timed_add(project(tmp / "s3"), tmp / "src")
        finally:
            server.stop()
    print(f"data add + push of {n} files: local-disk remote {local:.1f}s, "
          f"local S3 server ({endpoint}) {s3:.1f}s, ratio S3/local {s3 / local:.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
