"""Metrics summed across worker processes (proxy/workers.py): with workers, every process
writes its series to files in the supervisor's private directory (prometheus_client's
multiprocess mode, chosen when prometheus_client is imported, by PROMETHEUS_MULTIPROC_DIR);
a scrape of any worker reads them all. Counters and histograms are summed, a dead
worker's included; one bridge alone keeps its own registry, in memory. Only the
directory a supervisor made is read (it names it in WORKERS_METRICS_VARIABLE too): a
PROMETHEUS_MULTIPROC_DIR set for other programs is never summed into the bridge's."""

import os

from prometheus_client import CollectorRegistry, values
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
WORKERS_METRICS_VARIABLE = "COMPLETE_BRIDGE_WORKERS_METRICS_DIR"  # set by proxy/workers.py


def scraped(own: CollectorRegistry) -> CollectorRegistry:
    """The registry a scrape renders: `own`, or in multiprocess mode one that sums the
    files of every worker."""
    directory = os.environ.get(WORKERS_METRICS_VARIABLE)
    if not directory or directory != os.environ.get(MULTIPROC_VARIABLE):
        return own  # not a worker of a supervisor
    if values.ValueClass is values.MutexValue:  # prometheus_client came before the variable
        return own
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry
