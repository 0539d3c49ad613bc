"""Read the serving log: JSON lines, one record a generation, in bentoml.monitor's layout and
format (written by components/serving/servelog.py)."""
from __future__ import annotations

import json
from pathlib import Path

MONITOR_NAME = "genloop_generations"


def read_serving_log(log_dir: Path) -> "pandas.DataFrame":  # noqa: F821
    import pandas as pd

    records = []
    for path in sorted((Path(log_dir) / MONITOR_NAME / "data").glob("data.*.log*")):
        for line in path.read_text(encoding="utf-8").splitlines():     # the server writes UTF-8 (orjson)
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue          # a line cut by a crash; the rest still counts
    return pd.DataFrame.from_records(records)
