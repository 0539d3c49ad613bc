"""Set-up of each Dask worker that runs sweep points: `genloop sweep` preloads it into its local
cluster's workers; on a cluster of your own, start the workers with
`dask worker tcp://HOST:8786 --preload flows.dask_worker`. Two workers share one terminal, so
they print warnings only (the genloop command prints a line per finished point; everything
still reaches the Prefect log), draw no progress bars, and send no telemetry."""
from __future__ import annotations

import logging
import os
import warnings


def dask_setup(worker=None) -> None:
    from flows.cli import TELEMETRY_OFF
    from flows.console import configure_console

    for key, value in {**TELEMETRY_OFF, "GENLOOP_PROGRESS_BARS": "0",
                       "PREFECT_LOGGING_EXTRA_LOGGERS": "components"}.items():
        os.environ.setdefault(key, value)
    configure_console(logging.WARNING)
    logging.getLogger("components").setLevel(logging.INFO)      # to the Prefect log
    # scikit-learn notes that a daemonic Dask worker runs its kernels single-process: expected here
    warnings.filterwarnings("ignore", message="Inside a Dask worker with daemon=True")
