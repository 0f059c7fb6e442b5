"""/metrics (Prometheus): the panel's numbers, computed from the database and Redis at each
scrape (collector.py, exposition.py); what no row records is kept in Redis for it: the open
SSE clients of each web process (sse_clients.py) and the watcher's lag (watcher_lag.py).
Those two are imported by the web process's streams and by the watcher: this package
imports nothing itself (prometheus_client only where a scrape is answered)."""
