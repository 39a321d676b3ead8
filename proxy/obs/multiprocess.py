"""Metrics summed across worker processes (proxy/workers.py): with workers, every process
writes its series to files in the supervisor's private directory (prometheus_client's
multiprocess mode, chosen when prometheus_client is imported, by PROMETHEUS_MULTIPROC_DIR);
a scrape of any worker reads them all. Counters and histograms are summed, a dead
worker's included; one bridge alone keeps its own registry, in memory."""

import os

from prometheus_client import CollectorRegistry, values
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def scraped(own: CollectorRegistry) -> CollectorRegistry:
    """The registry a scrape renders: `own`, or in multiprocess mode one that sums the
    files of every worker."""
    directory = os.environ.get(MULTIPROC_VARIABLE)
    if not directory or values.ValueClass is values.MutexValue:  # not in multiprocess mode
        return own
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry
