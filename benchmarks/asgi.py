"""The ASGI app the benchmarks serve: controlpanel.asgi's, with one knob added.

HELMDECK_SSE_HEARTBEAT (seconds, default 15 as in production) shortens the ": heartbeat"
interval of the SSE streams, so the connections benchmark can check heartbeats arrive on
time without holding 500 clients for a minute: it becomes the settings'
HELMDECK_SSE_HEARTBEAT_SECONDS before Django reads them.
"""

import os

if os.environ.get("HELMDECK_SSE_HEARTBEAT"):
    os.environ["HELMDECK_SSE_HEARTBEAT_SECONDS"] = os.environ["HELMDECK_SSE_HEARTBEAT"]

from controlpanel.asgi import application  # noqa: E402, F401 - re-exported for uvicorn
