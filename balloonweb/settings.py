"""BalloonWeb settings: every value comes from an environment variable with an embedded default.

Memory is stored and passed around in KiB everywhere (as libvirt does); pages and the command line show MiB.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    return env(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def env_float(name: str, default: float) -> float:
    return float(env(name, str(default)))


DEBUG = env_bool("DEBUG")

# Where the simulated fleet, the lab and other run-time state live (sockets, pid files, guest images).
STATE_DIR = Path(env("BALLOONWEB_STATE_DIR", str(BASE_DIR / "var")))

# The run command writes a key to STATE_DIR/secret_key, so that other commands on the same machine find it.
_SECRET_KEY_FILE = STATE_DIR / "secret_key"
SECRET_KEY = env("SECRET_KEY") or (_SECRET_KEY_FILE.read_text().strip() if _SECRET_KEY_FILE.exists() else "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            f"SECRET_KEY must be set when DEBUG is off (or written to {_SECRET_KEY_FILE}); DEBUG=1 uses a development key."
        )
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = [h.strip() for h in env("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env("CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "balloonweb.access",
    "balloonweb.audit",
    "hosts",
    "domains",
    "domains.autoscaler",
    "balloonweb.api", "drf_spectacular_sidecar",  # REST API, tokens, /metrics (issue 5); Swagger UI assets served locally
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: gives each request an id, its client address and `request.actor`.
    "balloonweb.access.middleware.RequestContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "balloonweb.access.middleware.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After HtmxMiddleware (request.htmx): a refusal of an htmx request is a fragment, not a whole page.
    "balloonweb.access.htmx.HtmxRefusalMiddleware",
    # After SessionMiddleware: renews the session on a person's requests, not on the page's background ones.
    "balloonweb.access.middleware.IdleSessionMiddleware",
]
CSRF_FAILURE_VIEW = "balloonweb.access.htmx.csrf_failure"

ROOT_URLCONF = "balloonweb.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "balloonweb.asgi.application"

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
            ],
        },
    },
]

DATABASE_URL = env("DATABASE_URL", f"sqlite:///{STATE_DIR / 'balloonweb.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the workers and beat write at once: WAL lets readers go on while one writes, IMMEDIATE
    # takes the write lock at BEGIN so a read-then-write (a capacity check) cannot be overtaken.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(STATE_DIR / "test.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME") or None}
    # A worker machine that freezes or drops off the network inside a transaction holds its locks (a host row,
    # the audit log's) until PostgreSQL notices: TCP keepalives find a dead peer in about a minute, and a
    # transaction left idle is ended after DB_IDLE_IN_TRANSACTION_S (no code path waits that long inside one).
    idle_s = env_float("DB_IDLE_IN_TRANSACTION_S", 300)
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
        # The server's side too: it is the server that holds a dead client's locks.
        "options": f"-c idle_in_transaction_session_timeout={int(idle_s * 1000)} -c tcp_keepalives_idle=30 "
                   "-c tcp_keepalives_interval=10 -c tcp_keepalives_count=3",
    })

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "fleet"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")

# Live updates go through Redis pub/sub (balloonweb/live/layer.py says why, and how a gap is caught up).
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "balloonweb.live.layer.LiveChannelLayer",
        # Pub/sub channels are server-wide (not per Redis database): the prefix names the database too, so
        # that two installations (or test runs) on one Redis never hear each other.
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{env('CHANNELS_PREFIX', 'balloonweb')}.db{REDIS_URL.rsplit('/', 1)[-1] or 0}."},
    }
}

# A new domain may not be shrunk below this (or below its own size, if smaller) until an admin says otherwise.
DEFAULT_FLOOR_MIB = int(env("DEFAULT_FLOOR_MIB", "128"))

# Intervals, seconds.
POLL_INTERVAL = env_float("POLL_INTERVAL", 5.0)
SWEEP_INTERVAL = env_float("SWEEP_INTERVAL", 15.0)
RESIZE_TIME_LIMIT = env_float("RESIZE_TIME_LIMIT", 60.0)
MIGRATE_TIME_LIMIT = env_float("MIGRATE_TIME_LIMIT", 900.0)
# How long a shutdown or restart waits for the guest to turn itself off before the job fails (force does not wait).
SHUTDOWN_WAIT = env_float("SHUTDOWN_WAIT", 120.0)
# A queued job whose message has waited this long without a worker picking it up is sent again.
REQUEUE_AFTER = env_float("REQUEUE_AFTER", 30.0)
# Memory samples for the charts: raw (one per domain per SAMPLE_EVERY_S, and one whenever its balloon moves; 0: one
# every poll) for SAMPLE_RAW_WINDOW_S, then one per minute, dropped after SAMPLE_KEEP_S.
SAMPLE_EVERY_S = env_float("SAMPLE_EVERY_S", 15.0)
SAMPLE_RAW_WINDOW_S = env_float("SAMPLE_RAW_WINDOW_S", 3600.0)
SAMPLE_KEEP_S = env_float("SAMPLE_KEEP_S", 7 * 86400.0)

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "jobs"
# Periodic work has its own queue: "poll" (and "poll.<group>" for a host group's polls), "jobs" for jobs.
# The autoscaler's cycle is on "poll" too: short, once per poll, and not to wait behind migrations on "jobs".
CELERY_TASK_ROUTES = {
    "domains.tasks.poll_fleet": {"queue": "poll"},
    "domains.tasks.sweep_jobs": {"queue": "poll"},
    "domains.autoscaler.tasks.autoscale": {"queue": "poll"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Longer than the longest job, so that Redis does not hand a running job to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(MIGRATE_TIME_LIMIT * 2)}
CELERY_TIMEZONE = "UTC"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {"TITLE": "BalloonWeb API", "VERSION": "1", "SERVE_INCLUDE_SCHEMA": False}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}


# -- access and audit ---------------------------------------------------------------------------------------

# The audit chain's HMAC key lives outside the database: this variable, or a file (created 0600 on first use).
AUDIT_HMAC_KEY = env("AUDIT_HMAC_KEY")
AUDIT_HMAC_KEY_FILE = env("AUDIT_HMAC_KEY_FILE", str(STATE_DIR / "audit-hmac.key"))
# The chain's head, appended every AUDIT_ANCHOR_INTERVAL seconds where the database cannot reach (anchors.py).
AUDIT_ANCHOR_FILE = env("AUDIT_ANCHOR_FILE", str(Path(AUDIT_HMAC_KEY_FILE).parent / "audit-anchors.jsonl"))
AUDIT_ANCHOR_INTERVAL = float(env("AUDIT_ANCHOR_INTERVAL", "60"))
# Addresses or networks of reverse proxies whose X-Forwarded-For is believed; none: the peer address is the client.
TRUSTED_PROXIES = [p.strip() for p in env("TRUSTED_PROXIES").split(",") if p.strip()]

# Login attempts: after this many failures for one user name or one address within the window, wait it out.
LOGIN_FAILURE_LIMIT = int(env("LOGIN_FAILURE_LIMIT", "5"))
LOGIN_FAILURE_WINDOW = int(env("LOGIN_FAILURE_WINDOW", "900"))
AUTHENTICATION_BACKENDS = ["balloonweb.access.ratelimit.RateLimitedModelBackend"]

# Shared by every process (web, workers): the login counters must be, and Redis is there anyway.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_PREFIX", env("CHANNELS_PREFIX", "balloonweb")),
    }
}

# Idle timeout: a session lasts SESSION_IDLE_TIMEOUT seconds after the last request a person made (renewed by
# each one, not by the page's background refreshes: balloonweb.access.middleware.IdleSessionMiddleware).
SESSION_COOKIE_AGE = int(env("SESSION_IDLE_TIMEOUT", str(8 * 3600)))
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Production hardening (`manage.py check --deploy` is clean with SECURE_HTTPS=1; see docs/deploy.md). Off by
# default because the run command serves plain HTTP on 127.0.0.1, where secure cookies would never come back.
SECURE_HTTPS = env_bool("SECURE_HTTPS")
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_SSL_REDIRECT = SECURE_HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000" if SECURE_HTTPS else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", SECURE_HTTPS)
# Turning preload off is a deliberate choice (the domain may not be ready for the browsers' list): say so once.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD or not SECURE_HTTPS else ["security.W021"]
# A TLS-terminating proxy says so in this header; believed only when TRUSTED_PROXIES names the proxy.
if TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
CSP_EXEMPT_PATHS = ["/api/docs/"]
