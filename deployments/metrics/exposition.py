"""A scrape's body: a fresh registry that holds only the panel's collector (collector.py).
No process_*, python_* or platform series: they would describe whichever web process
happened to answer the scrape, not the panel."""

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from deployments.metrics.collector import PanelCollector


def metrics_exposition(accept=""):
    """(body, content type) of a scrape, in the format the Accept header asks for (the
    Prometheus text format unless it asks for OpenMetrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PanelCollector())
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
