"""The panel's own probes : /health is liveness, /ready is readiness."""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from deployments import heartbeat
from deployments.integrations.redis import RedisError, app_client


@login_not_required
@never_cache
@require_GET
def health(request):
    """Alive: the process answers. No dependency is checked, so a Redis outage never
    makes Kubernetes restart a healthy web process."""
    return JsonResponse({"status": "healthy"})


@login_not_required
@never_cache
@require_GET
def ready(request):
    """Ready: the database and Redis answer and at least one worker has a fresh heartbeat."""
    checks = {"database": _check_database(), **_check_redis_and_worker()}
    ok = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ready" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


def _check_database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


def _check_redis_and_worker():
    conn = app_client()
    try:
        conn.ping()
        workers = heartbeat.live_workers(conn)
    except RedisError as exc:
        return {"redis": f"unreachable: {type(exc).__name__}", "worker": "unknown (Redis is down)"}
    finally:
        conn.close()
    if not workers:
        return {
            "redis": "ok",
            "worker": f"no heartbeat in the last {settings.HELMDECK_WORKER_HEARTBEAT_TTL}s",
        }
    return {"redis": "ok", "worker": "ok"}
