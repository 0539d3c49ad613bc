"""The serving log: one JSON line per generated item, in the layout and format of
`bentoml.monitor`'s default monitor (`<dir>/genloop_generations/data/data.<worker>.log`,
rotated daily; the columns, then `timestamp`, `request_id`, `trace_id`; the schema once in
`schema/schema.<worker>.log`), which components/monitoring/logs.py reads.

Written here rather than through `bentoml.monitor(...)`: its default monitor sends every row
through a `logging.Logger` and python-json-logger's formatter, about 43 us for a one-row
request and 17 us a row beyond (measured in process), and the monitor's context manager,
dependency injection and per-value bookkeeping run on the event loop for every request. On 2
cores that made images n=1 12-21% slower at 8 and 32 clients (BENCHMARKS.md "Serving under
load"). Here a request's rows are one `orjson.dumps` each (the standard library's
`json.dumps` took 84 us for an images n=16 request's 16 rows, orjson 7 us; the lines are the
same JSON, written without spaces) and one write through the standard library's
TimedRotatingFileHandler (the handler and the daily rotation bentoml's default
monitor configures), flushed per request: a row is on disk when its response is sent, and a
row that cannot be written fails its request (HTTP 507) instead of being lost.
"""
from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
import threading
from pathlib import Path
from typing import Any

import orjson

from components.errors import GenloopError
from components.monitoring.logs import MONITOR_NAME

RESERVED = ("timestamp", "request_id", "trace_id")
LINE = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY     # numpy scalars as numbers


def _context_ids() -> tuple[str, str]:
    """The request's id and trace id as bentoml's default monitor records them (str(None)
    outside a request)."""
    from bentoml._internal.context import trace_context      # where that monitor reads them

    return str(trace_context.request_id), str(trace_context.trace_id)


class ServingLog:
    """Append-only JSON lines under `log_dir` for this server worker (`worker` None: the
    BentoML worker index, 0 outside a server)."""

    def __init__(self, log_dir: str | Path, worker: int | None = None, name: str = MONITOR_NAME):
        if worker is None:
            from bentoml._internal.context import server_context

            worker = server_context.worker_index or 0
        self.root = Path(log_dir) / name
        self.data_path = self.root / "data" / f"data.{worker}.log"
        self.schema_path = self.root / "schema" / f"schema.{worker}.log"
        self._handler: logging.Handler | None = None
        self._schema_written = False
        self._lock = threading.Lock()

    def open(self) -> "ServingLog":
        """Create the folders and open the data file now (the server calls this at start-up,
        so a folder it cannot write fails there, in one line, not on every request)."""
        with self._lock:
            if self._handler is None:
                try:
                    self.data_path.parent.mkdir(parents=True, exist_ok=True)
                    self.schema_path.parent.mkdir(parents=True, exist_ok=True)
                    handler = logging.handlers.TimedRotatingFileHandler(str(self.data_path), when="D",
                                                                        encoding="utf-8")
                except OSError as exc:
                    raise GenloopError(f"cannot write the serving log under {self.root.parent} "
                                       f"(GENLOOP_MONITOR_DIR): {exc.strerror or exc}; point it at a "
                                       f"writable folder.") from None
                self._handler = handler
        return self

    def _write_schema(self, row: dict, roles: dict[str, str]) -> None:
        from bentoml._internal.context import server_context

        columns = [{"name": key, "role": roles.get(key, "prediction"),
                    "type": "categorical" if isinstance(value, str) else "numerical"}
                   for key, value in row.items()]
        meta = {"bento_name": server_context.bento_name, "bento_version": server_context.bento_version}
        with self.schema_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"meta_data": meta, "columns": columns}) + "\n")

    def write(self, rows: list[dict[str, Any]], roles: dict[str, str] | None = None,
              request_id: str | None = None, trace_id: str | None = None) -> None:
        """Log `rows` (one per generated item, the same keys each) as one request's: the
        request and trace ids default to the current request's. A key named like a reserved
        column gets a trailing underscore, as bentoml's monitor renames it. Raises OSError
        when the rows cannot be written (a full disk): the caller fails the request rather
        than answer for items the log does not hold."""
        if not rows:
            return
        if request_id is None or trace_id is None:
            rid, tid = _context_ids()
            request_id, trace_id = request_id or rid, trace_id or tid
        extra = {"timestamp": datetime.datetime.now().isoformat(), "request_id": request_id, "trace_id": trace_id}
        if any(key in RESERVED for key in rows[0]):
            rows = [{(k + "_" if k in RESERVED else k): v for k, v in row.items()} for row in rows]
        lines = b"".join(orjson.dumps({**row, **extra}, option=LINE) for row in rows).decode()
        self.open()
        with self._lock:
            if not self._schema_written:
                self._write_schema(rows[0], roles or {})
                self._schema_written = True
            # the handler's daily rotation, then its stream written directly: its emit() would
            # print a failed write to stderr and go on, losing the rows silently
            handler = self._handler
            if handler.shouldRollover(None):
                handler.doRollover()
            if handler.stream is None:
                handler.stream = handler._open()
            handler.stream.write(lines)
            handler.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._handler is not None:
                self._handler.close()
                self._handler = None
