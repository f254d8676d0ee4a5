"""gunicorn settings that the command line does not carry."""

import os

from prometheus_client import multiprocess


def child_exit(server, worker):
    # A dead worker's metric files must stop counting as live gauges.
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.mark_process_dead(worker.pid)
