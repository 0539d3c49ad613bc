"""What the genloop command prints while a flow runs.

Log records are printed as plain messages through the rich console that progress bars use
(components/progress.py), so a line lands above a bar instead of through it. Prefect's own
per-run chatter stays in the Prefect log (its API handler) and out of the console: each
task's "Finished in state Completed()", what the libraries print or log at INFO inside a task,
and, on a failure, the task's and the flow's tracebacks and three copies of the message;
the genloop command then prints the error once (flows/cli.py: main) and says where the
traceback is. Flow-level lines (the run's name, approval waits, warnings) still show.
"""
from __future__ import annotations

import logging

RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")
FAILURE_PREFIXES = ("Finished in state", "Encountered exception", "Task run failed", "Flow run failed")


class QuietPrefectRuns(logging.Filter):
    """Keeps Prefect's per-run INFO chatter and failure tracebacks off the console; remembers
    the last failed flow run so the error line can point at its log."""

    def __init__(self) -> None:
        super().__init__()
        self.failed_flow_run: tuple[str, str] | None = None      # (name, id)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(RUN_LOGGERS):          # libraries that set their own INFO level
            return record.levelno >= logging.WARNING or record.name.startswith(("components", "prefect"))
        message = record.getMessage()
        if record.exc_info or message.startswith(FAILURE_PREFIXES):
            if record.levelno >= logging.ERROR and hasattr(record, "flow_run_id"):
                self.failed_flow_run = (getattr(record, "flow_run_name", "?"), record.flow_run_id)
            return False
        return record.name.startswith("prefect.flow_runs") or record.levelno >= logging.WARNING


class RichConsoleHandler(logging.Handler):
    """Plain "%(message)s" lines through components.progress.console()."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from components.progress import console

            console().print(self.format(record), markup=False, highlight=False, emoji=False, soft_wrap=True)
        except Exception:                                     # noqa: BLE001 (logging must not raise)
            self.handleError(record)


_quiet = QuietPrefectRuns()


def configure_console(level: int = logging.NOTSET) -> None:
    """The root handler of the genloop command. Before Prefect is imported, Prefect keeps it
    (a user handler) and adds only its API handler to the run loggers; after, it replaces
    Prefect's console handler. Idempotent; other handlers (pytest's capture) stay. `level`:
    the least a record needs to print (a sweep's Dask workers print warnings only; their
    lines still reach the Prefect log)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if type(old) in (logging.StreamHandler, RichConsoleHandler) or type(old).__name__ == "PrefectConsoleHandler":
            root.removeHandler(old)
    handler = RichConsoleHandler(level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_quiet)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def failure_hint() -> str | None:
    """Where the traceback of the flow run that just failed is, or None."""
    if _quiet.failed_flow_run is None:
        return None
    name, run_id = _quiet.failed_flow_run
    return f"(the traceback is in the Prefect log of flow run {name!r}: prefect flow-run logs {run_id})"
