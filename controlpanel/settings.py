"""Helmdeck settings: everything from the environment (12-factor), with defaults that make
`make run` work on a bare machine (SQLite, a local Redis). See README "Configuration"."""

import importlib.util
from pathlib import Path

import environ
from django.utils.csp import CSP

from controlpanel.state import state_dir_secure

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(env.str("HELMDECK_ENV_FILE", default=str(BASE_DIR / ".env")))
STATE_DIR = Path(env.str("HELMDECK_STATE_DIR", default=str(BASE_DIR / ".helmdeck")))

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="insecure-dev-only-key-set-SECRET_KEY-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Fernet keys for secret values at rest; first encrypts, all decrypt (deployments/crypto.py).
HELMDECK_SECRET_KEYS = env.list("HELMDECK_SECRET_KEYS", default=[])

INSTALLED_APPS = [
    "deployments.admin_site.HelmdeckAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "deployments.apps.DeploymentsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "deployments.middleware.HtmxLoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires
]

ROOT_URLCONF = "controlpanel.urls"
ASGI_APPLICATION = "controlpanel.asgi.application"
WSGI_APPLICATION = "controlpanel.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",  # {% csp_nonce_attr %} (admin)
            ],
        },
    },
]

if "DATABASE_URL" not in env or STATE_DIR.exists():
    # the embedded default keeps its SQLite file here: 0700, files 0600 (controlpanel/state.py)
    state_dir_secure(STATE_DIR)
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{STATE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
# PostgreSQL: a pool of connections per process (psycopg_pool), as Django advises under
# ASGI instead of persistent connections. A new connection costs ~11 ms here (password
# check, session set-up): every page and API call paid it. HELMDECK_DB_POOL_SIZE=0 turns
# the pool off.
DB_POOL_SIZE = env.int("HELMDECK_DB_POOL_SIZE", default=10)
if DATABASES["default"]["ENGINE"].endswith("postgresql") and DB_POOL_SIZE > 0:
    from psycopg_pool import ConnectionPool

    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 0,
        "max_size": DB_POOL_SIZE,
        "timeout": 10,
        # a connection is checked as it leaves the pool (one round trip, ~0.1 ms): after a
        # PostgreSQL restart the pool's old connections are dropped, not handed out dead
        "check": ConnectionPool.check_connection,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Failed logins (and wrong old passwords on the password-change forms, fed in by
# deployments/services/logins.py) are rate-limited by django-axes, one limit for two
# counts: a username and address pair, and the username from any number of addresses (so
# rotating addresses buys nothing). A lockout lasts AXES_COOLOFF_TIME after the last counted
# failure; failures during a lockout are not counted and do not extend it, so nobody can
# lock an account for long. There is no per-address count across usernames: one person's
# typos never lock colleagues behind the same NAT out of their own accounts.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("HELMDECK_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("HELMDECK_LOGIN_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], ["username"]]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The client's address is REMOTE_ADDR only: the ASGI server's peer, or the address a proxy
# named in HELMDECK_TRUSTED_PROXIES forwarded (controlpanel/serve.py). Axes never reads
# X-Forwarded-For, X-Real-IP or Forwarded itself, even if django-ipware gets installed.
AXES_CLIENT_IP_CALLABLE = "deployments.services.logins.login_client_address"
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
AXES_IPWARE_PROXY_COUNT = None
# Proxies (addresses or CIDR networks) whose X-Forwarded-For names the client; none by default.
HELMDECK_TRUSTED_PROXIES = env.list("HELMDECK_TRUSTED_PROXIES", default=[])
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# The API (/api/v1/): requests per minute per token and per client address, and wrong
# tokens per address per minute before that address is refused for a minute. The address
# is REMOTE_ADDR, as for logins: X-Forwarded-For is never read (NINJA_NUM_PROXIES = 0).
HELMDECK_API_RATE_PER_TOKEN = env.str("HELMDECK_API_RATE_PER_TOKEN", default="600/m")
HELMDECK_API_RATE_PER_ADDRESS = env.str("HELMDECK_API_RATE_PER_ADDRESS", default="1200/m")
HELMDECK_API_AUTH_FAILURES = env.int("HELMDECK_API_AUTH_FAILURES", default=20)
NINJA_NUM_PROXIES = 0
# Live pages (SSE): a heartbeat comment after this many idle seconds, and a re-check of the
# stream's session, user and role this often (a revoked stream ends with `login-required`).
HELMDECK_SSE_HEARTBEAT_SECONDS = env.float("HELMDECK_SSE_HEARTBEAT_SECONDS", default=15.0)
# The pod terminal (a shell in a container, in the browser): off unless HELMDECK_POD_EXEC is
# set, and then for admins only. A session ends after this many seconds without a keystroke,
# and its user, session and role are checked again this often (sign-out, role removal). The
# keystrokes are kept in the session's audit row only when HELMDECK_POD_EXEC_RECORD_INPUT is
# set (what is typed there, passwords included, is then stored: say so to the team).
HELMDECK_POD_EXEC = env.bool("HELMDECK_POD_EXEC", default=False)
HELMDECK_POD_EXEC_IDLE_SECONDS = env.float("HELMDECK_POD_EXEC_IDLE_SECONDS", default=900.0)
HELMDECK_POD_EXEC_RECHECK_SECONDS = env.float("HELMDECK_POD_EXEC_RECHECK_SECONDS", default=5.0)
HELMDECK_POD_EXEC_RECORD_INPUT = env.bool("HELMDECK_POD_EXEC_RECORD_INPUT", default=False)
# /metrics (Prometheus text format; deployments/views/metrics.py, README "Metrics"): off
# (404) unless one of these is set. HELMDECK_METRICS_TOKEN: the scraper sends
# `Authorization: Bearer <token>`. HELMDECK_METRICS_ALLOW: addresses or CIDR networks the
# scrape may come from (REMOTE_ADDR: X-Forwarded-For counts only from
# HELMDECK_TRUSTED_PROXIES, as everywhere). Both set: both are required.
HELMDECK_METRICS_TOKEN = env.str("HELMDECK_METRICS_TOKEN", default="")
HELMDECK_METRICS_ALLOW = env.list("HELMDECK_METRICS_ALLOW", default=[])

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# Django Ninja's Swagger UI files, for the API's docs page (templates/api_docs.html): Ninja
# is not an installed app, whose template folder would bring its CDN and inline-script pages
_NINJA = importlib.util.find_spec("ninja")
STATICFILES_DIRS: list = [BASE_DIR / "static"]
if _NINJA is not None and _NINJA.origin:
    STATICFILES_DIRS.append(("ninja", Path(_NINJA.origin).parent / "static" / "ninja"))
STATIC_ROOT = env.str("STATIC_ROOT", default=str(STATE_DIR / "staticfiles"))

# Behind HTTPS (HELMDECK_HTTPS=true): secure cookies, HSTS, redirects; `manage.py check
# --deploy` passes. `make run` serves plain HTTP on localhost, so it is off by default.
HTTPS = env.bool("HELMDECK_HTTPS", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$"]  # probes speak plain HTTP inside the pod
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response, pages and /static/ alike (django.middleware.csp;
# controlpanel/static_files.py). No inline script, handler, eval or javascript: URL anywhere
# (htmx is configured by a <meta name="htmx-config"> in base.html: allowEval false, no
# injected indicator <style>). Inline <style> only with the request's nonce (the admin's
# change list has one); style attributes are refused. SSE and htmx requests: connect-src.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000
PROFILE_UPLOAD_MAX_BYTES = 256 * 1024

# Worker results the pages poll for (previews, doctor reports) live in Redis, with a TTL,
# stored as JSON (controlpanel/cache.py): a value Helmdeck reads from Redis is never a pickle.
CACHES = {
    "default": {
        "BACKEND": "controlpanel.cache.JSONRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "helmdeck",
        "TIMEOUT": 900,
        "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
    }
}

# Celery (controlpanel/celery.py reads the CELERY_ namespace).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# JSON only, in every direction: a pickle in the broker is refused, never loaded.
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = CELERY_EVENT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = CELERY_RESULT_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 60 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 55 * 60
# Longer than the longest task, so Redis does not redeliver a deploy that is still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 60 * 60}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker refreshes this key; /ready needs one younger than the TTL.
HELMDECK_WORKER_HEARTBEAT_SECONDS = env.int("HELMDECK_WORKER_HEARTBEAT_SECONDS", default=10)
HELMDECK_WORKER_HEARTBEAT_TTL = env.int("HELMDECK_WORKER_HEARTBEAT_TTL", default=30)
# How often (at most, across all workers) the reaper settles releases whose worker died and
# queues again releases whose queued task Redis lost.
HELMDECK_REAP_SECONDS = env.int("HELMDECK_REAP_SECONDS", default=60)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "null": {"class": "logging.NullHandler"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Apprise's plugins name a channel's secrets in their messages (a URL's path and query
    # at DEBUG, an ntfy topic or a chat id in a warning), and urllib3 its request line or
    # the path it retries: neither reaches a log. The reason of a failed notification is
    # read from Apprise's own result, masked (integrations/notify.py).
    "loggers": {
        name: {"level": "WARNING", "handlers": ["null"], "propagate": False}
        for name in ("apprise", "urllib3")
    },
}

# Serve /static/ from the ASGI app itself (controlpanel/asgi.py); turn off behind a proxy.
HELMDECK_SERVE_STATIC = env.bool("HELMDECK_SERVE_STATIC", default=True)

# Binaries the worker runs (PATH lookups by default; make puts ~/.cache/helmdeck/tools/bin first).
HELMDECK_HELM = env.str("HELMDECK_HELM", default="helm")
HELMDECK_KUBECTL = env.str("HELMDECK_KUBECTL", default="kubectl")
# containerd's client, for clusters whose images are loaded into the node's containerd.
HELMDECK_CTR = env.str("HELMDECK_CTR", default="ctr")
# The Kubernetes versions manifests are validated against (the research's Minikube is 1.28).
HELMDECK_VALIDATE_KUBE_VERSIONS = env.list(
    "HELMDECK_VALIDATE_KUBE_VERSIONS", default=["1.28.0", "1.34.0"]
)

# Deploys. Build contexts in profiles are relative to HELMDECK_PROJECT_DIR.
HELMDECK_PROJECT_DIR = env.str("HELMDECK_PROJECT_DIR", default=str(BASE_DIR))
# Build contexts must lie inside one of these folders (relative ones are under
# HELMDECK_PROJECT_DIR), never the panel's checkout, state folder or key file.
HELMDECK_SOURCE_ROOTS = env.list("HELMDECK_SOURCE_ROOTS", default=["examples"])
HELMDECK_ENV_FILE = env.str("HELMDECK_ENV_FILE", default=str(BASE_DIR / ".env"))
HELMDECK_HELM_TIMEOUT = env.int("HELMDECK_HELM_TIMEOUT", default=300)  # seconds helm --wait waits
HELMDECK_BUILD_TIMEOUT = env.int("HELMDECK_BUILD_TIMEOUT", default=1800)  # per image
HELMDECK_QUEUE_TIMEOUT = env.int("HELMDECK_QUEUE_TIMEOUT", default=3600)  # queued, no worker
# Cluster or Docker unreachable: retry a stage this many times, waiting 2, 4, 8 ... seconds.
HELMDECK_TRANSIENT_RETRIES = env.int("HELMDECK_TRANSIENT_RETRIES", default=3)
HELMDECK_RETRY_BACKOFF = env.float("HELMDECK_RETRY_BACKOFF", default=2.0)

# Notifications (services/notifications.py). Links in messages start with the panel's URL.
HELMDECK_PUBLIC_URL = env.str("HELMDECK_PUBLIC_URL", default="http://127.0.0.1:8000")
HELMDECK_NOTIFY_TIMEOUT = env.int("HELMDECK_NOTIFY_TIMEOUT", default=15)  # seconds per attempt
# A message that fails is tried again this many times, after 5, 15, 45 ... s (at most 15 min).
HELMDECK_NOTIFY_RETRIES = env.int("HELMDECK_NOTIFY_RETRIES", default=5)
HELMDECK_NOTIFY_BACKOFF = env.float("HELMDECK_NOTIFY_BACKOFF", default=5.0)
# A health notice waits until the profile has been unhealthy (or healthy again) this long,
# and a Degraded notice is sent at most once per window.
HELMDECK_HEALTH_NOTICE_HOLD = env.int("HELMDECK_HEALTH_NOTICE_HOLD", default=120)
HELMDECK_HEALTH_NOTICE_WINDOW = env.int("HELMDECK_HEALTH_NOTICE_WINDOW", default=3600)
