"""The console of the genloop command (flows/console.py): Prefect's per-run chatter and
tracebacks stay in the Prefect log, the error is printed once."""
import logging
import sys


def _record(name: str, message: str, level=logging.INFO, exc=False, **extra) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, message, (), None)
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            record.exc_info = sys.exc_info()
    record.__dict__.update(extra)
    return record


def test_the_console_keeps_prefect_run_chatter_and_tracebacks_in_the_prefect_log():
    from flows.console import QuietPrefectRuns

    quiet = QuietPrefectRuns()
    shown = {
        "task done": _record("prefect.task_runs", "Finished in state Completed()"),
        "print in a task": _record("prefect.task_runs", "Num real: 500 Num fake: 500"),
        "task traceback": _record("prefect.task_runs", "Task run failed with exception: X", logging.ERROR, exc=True),
        "task failed": _record("prefect.task_runs", "Finished in state Failed('X')", logging.ERROR),
        "flow traceback": _record("prefect.flow_runs", "Encountered exception during execution: X",
                                  logging.ERROR, exc=True, flow_run_name="strict-agouti", flow_run_id="1234"),
        "flow failed": _record("prefect.flow_runs", "Finished in state Failed('X')", logging.ERROR),
        "flow start": _record("prefect.flow_runs", "Beginning flow run 'strict-agouti' for flow 'genloop-retrain'"),
        "approval wait": _record("prefect.flow_runs", "waiting up to 3600 s for a person", logging.WARNING),
        "task warning": _record("prefect.task_runs", "retrying", logging.WARNING),
        "stage line": _record("components.stages", "evaluate   61.2 s  fid 27.054"),
        "progress": _record("components.progress", "evaluate: 100/500 images, 20.1 images/s, 20 s left"),
        "library info": _record("great_expectations.data_context", "Created temporary directory '/tmp/x'"),
        "library warning": _record("bentoml", "low disk space", logging.WARNING),
    }
    kept = {what for what, record in shown.items() if quiet.filter(record)}
    assert kept == {"flow start", "approval wait", "task warning", "stage line", "progress", "library warning"}
    assert quiet.failed_flow_run == ("strict-agouti", "1234")


def test_the_console_handler_replaces_prefects_and_stays_single():
    from prefect.logging.handlers import PrefectConsoleHandler

    from flows.console import RichConsoleHandler, configure_console

    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        prefects = PrefectConsoleHandler()
        root.addHandler(prefects)
        configure_console()
        configure_console()
        assert prefects not in root.handlers
        assert sum(isinstance(h, RichConsoleHandler) for h in root.handlers) == 1
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
