"""Sampling throughput of the text models: incremental decoding (the transformer's KV cache,
the LSTM's carried state; what `model.sample` does) against recomputing the window for every
token (`sample_text` without `step_fn`), on the CPU, at the default configs' sizes
(configs/charlm-pydocs.yaml, configs/lstm-pydocs.yaml; freshly initialised weights: the
cost does not depend on their values).

Each case samples `batch` continuations of "\\n" for `tokens` new tokens, both ways, and
checks they are the same text; times are medians of --repeats runs, the two paths
alternating. The recompute path is what `model.sample` did before: one eval-mode context,
the window through the network for every token. With block_size 64 a 200- or 500-token
sample is mostly past the window, where the incremental path decodes the cropped window
afresh for each token (what the recompute path computes, less the head and the last
layer's output for all but the last position); the 63-token rows stay within the window.

Usage: .venv/bin/python benchmarks/text_decoding.py [--threads N] [--repeats N] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from components.models import build_model  # noqa: E402
from components.models.base import eval_mode  # noqa: E402
from components.models.textgen import sample_text  # noqa: E402

CONFIGS = {"charlm": "configs/charlm-pydocs.yaml", "lstm": "configs/lstm-pydocs.yaml"}
CASES = [(batch, tokens) for batch in (1, 32) for tokens in (63, 200, 500)]


def timed(fn) -> tuple[float, list[str]]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def recompute(model, batch: int, tokens: int) -> list[str]:
    """What `model.sample` did before incremental decoding: the window through the network
    for every token."""
    with eval_mode(model.net):
        return sample_text(model.net, model.args.block_size, "cpu", batch, 1, max_new_tokens=tokens)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs of each path")
    parser.add_argument("--json", type=Path, help="also write the results here")
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    rows = []
    for family, config in CONFIGS.items():
        args = yaml.safe_load((ROOT / config).read_text())["model"]["args"]
        torch.manual_seed(0)
        model = build_model(family, args)
        model.sample(2, seed=0, max_new_tokens=8)                                    # warm up
        for batch, tokens in CASES:
            inc_times, rec_times = [], []
            for _ in range(opts.repeats):                    # alternating, so load drifts hit both
                inc_s, inc = timed(lambda: model.sample(batch, seed=1, max_new_tokens=tokens))
                rec_s, rec = timed(lambda: recompute(model, batch, tokens))
                assert inc == rec, f"{family} batch {batch} tokens {tokens}: the paths' texts differ"
                inc_times.append(inc_s)
                rec_times.append(rec_s)
            inc_s, rec_s = statistics.median(inc_times), statistics.median(rec_times)
            generated = batch * tokens
            rows.append({"family": family, "model_args": args, "batch": batch, "new_tokens": tokens,
                         "incremental_tok_s": round(generated / inc_s, 1),
                         "recompute_tok_s": round(generated / rec_s, 1),
                         "ratio": round(rec_s / inc_s, 2), "incremental_s": round(inc_s, 3),
                         "recompute_s": round(rec_s, 3), "same_text": True})
            r = rows[-1]
            print(f"{family:7} batch {batch:3}  {tokens:4} tokens  incremental {r['incremental_tok_s']:9.1f} tok/s"
                  f"  recompute {r['recompute_tok_s']:9.1f} tok/s  ratio {r['ratio']:5.2f}", flush=True)
    result = {"threads": opts.threads, "repeats": opts.repeats, "torch": torch.__version__, "rows": rows}
    print(json.dumps(result, indent=1))
    if opts.json:
        opts.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
