"""Continuous batching of text requests (textgen.BatchDecoder, the server's text engine) in
this process, no HTTP: tokens/s of 32 requests in flight against bare batch-32 sampling
(`model.sample(32, ...)`, all rows in lockstep), at the default charlm config's sizes
(configs/charlm-pydocs.yaml, freshly initialised weights: the cost does not depend on their
values).

A replay keeps 32 requests of 200 new tokens (prompt "def ") in flight: when one ends,
another arrives 1-3 steps later (seeded), as a client's next request would. Two arrival
patterns:
- staggered: the first 32 requests arrive over the first 200 steps, so requests sit at every
  position of their text; this is what clients that do not start together look like;
- lockstep: all 32 arrive at step 0, and every request that ends is replaced at once: one
  batch-32 sample after another, the load a closed loop of identical requests tends to.

Two decoders replay each pattern: `packed` (the network's Packing: every row still inside
its window in one forward, whatever its length) and `groups` (a forward per group of
requests admitted together: the decoder before packing, and what a network without a
Packing gets). Each round: a bare batch-32 sample, then --steps steps of each decoder, the
decoders' order alternating; figures are medians of the paired per-round ratios.

Usage: .venv/bin/python benchmarks/text_batching.py [--threads N] [--rounds N] [--steps N] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from components.models import build_model  # noqa: E402
from components.models.textgen import BatchDecoder, Decoding, TextJob  # noqa: E402
from components.serving.engine import TextEngine  # noqa: E402

SLOTS, TOKENS, PROMPT = 32, 200, "def "


class Replay:
    """SLOTS requests in flight through one BatchDecoder; `run(steps)` -> tokens/s."""

    def __init__(self, model, packed: bool, pattern: str, threads: int, seed: int = 0):
        d = model.decoding()
        if not packed:
            d = Decoding(d.block_size, d.device, d.logits_fn, d.step_fn)

        def before_forward(rows: int) -> None:       # the text engine's thread choice
            want = threads if rows >= TextEngine.SMALL_ROWS else 1
            if torch.get_num_threads() != want:
                torch.set_num_threads(want)

        self.decoder = BatchDecoder(d, before_forward)
        self.rng, self.seeds, self.step_no = random.Random(seed), iter(range(10**9)), 0
        self.arrivals: dict[int, int] = {}
        self.pattern = pattern
        for _ in range(SLOTS):
            self._arrive(self.rng.randrange(TOKENS) if pattern == "staggered" else 0)

    def _arrive(self, after: int) -> None:
        at = self.step_no + after
        self.arrivals[at] = self.arrivals.get(at, 0) + 1

    @torch.no_grad()
    def run(self, steps: int) -> float:
        tokens, start = 0, time.perf_counter()
        for _ in range(steps):
            count = self.arrivals.pop(self.step_no, 0)
            if count:
                self.decoder.add([TextJob(1, next(self.seeds), PROMPT, TOKENS) for _ in range(count)])
            self.step_no += 1
            if self.decoder.jobs:
                tokens += sum(j.n for j in self.decoder.jobs)
                for _ in self.decoder.step():
                    self._arrive(1 + self.rng.randrange(3) if self.pattern == "staggered" else 0)
        return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2, help="torch threads for forwards of 8+ rows (default 2)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200, help="decoder steps per round and decoder")
    parser.add_argument("--json", type=Path, help="also write the results here")
    opts = parser.parse_args()
    cfg = yaml.safe_load((ROOT / "configs/charlm-pydocs.yaml").read_text())
    torch.manual_seed(0)
    model = build_model("charlm", cfg["model"]["args"])
    model.net.eval()
    model.sample(2, 0, max_new_tokens=8)                                  # warm up
    result = {"threads": opts.threads, "rounds": opts.rounds, "steps": opts.steps, "slots": SLOTS,
              "new_tokens": TOKENS, "torch": torch.__version__, "patterns": {}}
    for pattern in ("staggered", "lockstep"):
        replays = {"packed": Replay(model, True, pattern, opts.threads),
                   "groups": Replay(model, False, pattern, opts.threads)}
        for replay in replays.values():
            replay.run(TOKENS + 100)                                      # into the steady state
        rounds = []
        for r in range(opts.rounds):
            torch.set_num_threads(opts.threads)
            start = time.perf_counter()
            model.sample(SLOTS, r, max_new_tokens=TOKENS)
            row = {"bare": SLOTS * TOKENS / (time.perf_counter() - start)}
            for name in (("packed", "groups") if r % 2 == 0 else ("groups", "packed")):
                row[name] = replays[name].run(opts.steps)
            rounds.append(row)
            print(f"{pattern} round {r + 1}: bare {row['bare']:,.0f}  packed {row['packed']:,.0f}  "
                  f"groups {row['groups']:,.0f} tokens/s", flush=True)
        summary = {name: round(statistics.median(r[name] for r in rounds)) for name in ("bare", "packed", "groups")}
        for name in ("packed", "groups"):
            summary[f"{name}_over_bare"] = round(statistics.median(r[name] / r["bare"] for r in rounds), 3)
        summary["packed_over_groups"] = round(statistics.median(r["packed"] / r["groups"] for r in rounds), 3)
        result["patterns"][pattern] = {"summary": summary, "rounds": rounds}
        print(f"{pattern}: {summary}", flush=True)
    if opts.json:
        opts.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
