"""The ASGI app the benchmarks serve: controlpanel.asgi's, with one knob added.

HELMDECK_SSE_HEARTBEAT (seconds, default 15 as in production) shortens the ": heartbeat"
interval of the SSE streams, so the connections benchmark can check heartbeats arrive on
time without holding 500 clients for a minute. deployments/views/streams.py reads its
HEARTBEAT_SECONDS at each wait, so setting the module attribute here takes effect; a
streams module without it (being reworked) keeps its own interval, and the benchmark
then waits that long instead.
"""

import os

from controlpanel.asgi import application  # noqa: F401 - re-exported for uvicorn
from deployments.views import streams

HEARTBEAT = os.environ.get("HELMDECK_SSE_HEARTBEAT")
if HEARTBEAT and hasattr(streams, "HEARTBEAT_SECONDS"):
    streams.HEARTBEAT_SECONDS = float(HEARTBEAT)
