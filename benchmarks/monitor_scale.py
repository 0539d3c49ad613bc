"""Wall time of `genloop monitor`'s checks at scale (issue 8), on a project with a
champion (default: this repo after `make run`, model dcgan-digits):

data+staleness: against an incoming 10,000-image data version (the embedded digits, each
                copy with one pixel nudged so every file has its own bytes and md5), cold
                (its files never seen by the feature cache) and again (cached);
output:         2,000 served rows (sampled as the service samples, written in the serving
                log's format) against the champion's output reference.
Usage: .venv/bin/python benchmarks/monitor_scale.py [ROOT] [MODEL]
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def incoming_version(dest: Path, count: int = 10_000) -> Path:
    import numpy as np
    from PIL import Image

    from components.data.embedded import write_embedded
    from components.data.images import list_images

    write_embedded(dest / "source")
    items = list_images(dest / "source" / "digits")
    rng = np.random.default_rng(0)
    for i in range(count):
        path, label = items[i % len(items)]
        with Image.open(path) as img:
            x = np.asarray(img.convert("L")).copy()
        r, c = rng.integers(0, x.shape[0]), rng.integers(0, x.shape[1])
        x[r, c] = (int(x[r, c]) + 1 + i // len(items)) % 256            # distinct bytes per copy
        out = dest / "incoming" / "digits" / label / f"{i:05d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x).save(out)
    return dest / "incoming"


def served_log(root: Path, model: str, dest: Path, rows: int = 2_000) -> Path:
    """`rows` generations sampled the way the service samples, in bentoml.monitor's format."""
    from components.config import build_dataclass, RunConfig
    from components.monitoring.drift import output_reference
    from components.monitoring.logs import MONITOR_NAME
    from components.registry import champion_summary, configure_bentoml_home

    configure_bentoml_home(root)
    champion = champion_summary(model)
    cfg = build_dataclass(RunConfig, {**champion.metadata["config"], "monitor": {
        **champion.metadata["config"].get("monitor", {}), "output_reference_samples": rows}})
    frame = output_reference(champion, cfg, dest / "fresh")       # fresh seeds: its own cache folder
    log = dest / "logs" / MONITOR_NAME / "data" / "data.1.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("\n".join(json.dumps({**row, "model_tag": champion.tag}) for row in frame.to_dict("records")))
    return dest / "logs"


def main(root: Path, model: str) -> None:
    from components.monitoring.run import monitor_model
    from components.registry import configure_bentoml_home

    configure_bentoml_home(root)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        incoming = incoming_version(tmp)
        print(f"10,000-image version written in {time.perf_counter() - start:.1f} s")
        for label in ("cold", "cached"):
            start = time.perf_counter()
            result = monitor_model(root, model, ("data", "staleness"), data_dir=incoming, out_dir=tmp / label)
            print(f"data+staleness, 10,000 images, {label}: {time.perf_counter() - start:.1f} s; "
                  + "; ".join(f"{c.kind} {'FIRED' if c.fired else 'ok'} {c.score:.4g}" for c in result.checks))
        logs = served_log(root, model, tmp)
        for label in ("first", "second"):
            start = time.perf_counter()
            result = monitor_model(root, model, ("output",), log_dir=logs, out_dir=tmp / label.replace(" ", "-"))
            print(f"output, 2,000 served rows, {label}: {time.perf_counter() - start:.1f} s; "
                  + "; ".join(c.summary for c in result.checks))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0]).resolve() if args else Path(__file__).resolve().parents[1],
         args[1] if len(args) > 1 else "dcgan-digits")
