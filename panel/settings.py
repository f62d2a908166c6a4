"""Berth panel settings: one module, driven by the environment (see README, Configuration)."""

from __future__ import annotations

from pathlib import Path

from panel.env import (
    env_bool,
    env_database,
    env_fernet_key,
    env_float,
    env_int,
    env_list,
    env_redis_url,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(env_str("BERTH_STATE_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("BERTH_DEBUG", False)
# The stacks' image-update check asks Docker Hub only when allowed (it is on the internet)
BERTH_STACK_CHECK_DOCKER_HUB = env_bool("BERTH_STACK_CHECK_DOCKER_HUB", False)
SECRET_KEY = env_str("BERTH_SECRET_KEY", "")
if not SECRET_KEY:
    # A per-installation key kept in the state dir, so sessions survive restarts.
    _key_file = STATE_DIR / "secret_key"
    if not _key_file.exists():
        import secrets

        STATE_DIR.mkdir(parents=True, exist_ok=True)
        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

ALLOWED_HOSTS = env_list("BERTH_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
RUNTIME_ROOT = env_str("BERTH_RUNTIME_ROOT", "/var/lib/berth")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",  # recovery codes
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "panel.access",
    "panel.audit",
    "panel.fleet",
    "panel.workloads",
    "panel.stacks",
    "panel.api",
    "panel.live",
    "panel.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "panel.access.middleware.SecurityHeadersMiddleware",
    "panel.audit.middleware.RequestIdMiddleware",
    "panel.dockerapi.middleware.NotServedMiddleware",  # Docker-shaped 404s under /docker/
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "panel.urls"
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
                "panel.web.navigation.navigation",
            ],
        },
    },
]
ASGI_APPLICATION = "panel.asgi.application"
WSGI_APPLICATION = "panel.wsgi.application"

# DATABASE_URL selects the database; the default is an embedded SQLite file in the state dir.
DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{STATE_DIR / 'berth.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    # The web server and the control worker write the same file: wait for locks instead of failing
    # at once (WAL mode is switched on per connection in panel.fleet.apps).
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    # Write transactions take SQLite's write lock when they begin, so a transaction that reads
    # first and writes later waits for the lock instead of failing with "database is locked"
    # when another process wrote in between (SQLite cannot upgrade a read lock then).
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    # Tests run the control worker as a separate process, so the test database is a file too.
    DATABASES["default"]["TEST"] = {"NAME": str(STATE_DIR / "test-berth.sqlite3")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"] + [  # front-end packages from npm (package.json)
    (f"vendor/{name}", BASE_DIR / "node_modules" / name / sub)
    for name, sub in (("htmx.org", "dist"), ("uplot", "dist"), ("ansi_up", ""))]
STATIC_ROOT = STATE_DIR / "collected-static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Sign-in hardening and access (issue 6) ------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",  # verifies (and upgrades) older hashes
]
AUTHENTICATION_BACKENDS = [
    "panel.access.backends.LockoutBackend",  # django-axes: refuses locked-out sign-ins
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("BERTH_SIGNIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_float("BERTH_SIGNIN_LOCKOUT_MINUTES", 15.0, minimum=0.1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_ENABLE_ADMIN = False
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
# Cookies only over HTTPS unless turned off for a plain-HTTP LAN install (browsers treat
# http://127.0.0.1 and http://localhost as secure, so `make run` signs in either way).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("BERTH_SECURE_COOKIES", True)
SESSION_COOKIE_AGE = int(env_float("BERTH_SESSION_HOURS", 12.0, minimum=0.1) * 3600)
CSRF_COOKIE_HTTPONLY = True
CSRF_FAILURE_VIEW = "panel.access.views.csrf_failure"  # says so when it is plain HTTP on a LAN
CSRF_COOKIE_SAMESITE = "Lax"
BERTH_CSP = env_str(
    "BERTH_CSP",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'")
OTP_TOTP_ISSUER = "Berth"
# Audit: forwarding of committed events as JSON lines (file:/PATH, syslog, syslog://HOST:PORT),
# retention (days; 0 keeps everything) and where archived events go.
BERTH_AUDIT_FORWARD = env_str("BERTH_AUDIT_FORWARD", "")
BERTH_AUDIT_RETENTION_DAYS = env_float("BERTH_AUDIT_RETENTION_DAYS", 0.0, minimum=0.0)
BERTH_AUDIT_ARCHIVE_DIR = env_str("BERTH_AUDIT_ARCHIVE_DIR", str(STATE_DIR / "audit-archive"))

# --- Control plane (issue 4) ---------------------------------------------------------------------
REDIS_URL = env_redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
# Seconds of heartbeat silence after which a host counts as down.
BERTH_HOST_DOWN_AFTER = env_float("BERTH_HOST_DOWN_AFTER", 15.0, minimum=1.0)
# Seconds a host stays down before its restartable containers move to another host.
BERTH_RESCHEDULE_AFTER = env_float("BERTH_RESCHEDULE_AFTER", 30.0, minimum=0.0)
# How often the control worker's beat runs reconcile and the host-down check.
BERTH_RECONCILE_INTERVAL = env_float("BERTH_RECONCILE_INTERVAL", 5.0, minimum=0.5)
# Seconds a deploy's lease lasts without a heartbeat: a control worker that dies mid-deploy
# (kill -9, Ctrl-C, a crash) leaves its revision to another one after this (panel/stacks/engine.py).
BERTH_DEPLOY_LEASE = env_float("BERTH_DEPLOY_LEASE", 10.0, minimum=2.0)
# Seconds after which a message a control worker took but never finished (it was killed) is
# delivered again: control tasks are short and idempotent (reports, engine slices under a lease).
BERTH_CONTROL_REDELIVERY = env_float("BERTH_CONTROL_REDELIVERY", 60.0, minimum=5.0)
# A container still out of sync this long after its last apply gets the apply sent again.
BERTH_REAPPLY_AFTER = env_float("BERTH_REAPPLY_AFTER", 30.0, minimum=0.5)
# Seconds to wait for an agent's answer to logs/stats before the API answers 504.
BERTH_RPC_TIMEOUT = env_float("BERTH_RPC_TIMEOUT", 10.0, minimum=0.1)
# `docker wait` (and `docker run` without -d) holds its request this long at most, then 408.
BERTH_DOCKER_WAIT = env_float("BERTH_DOCKER_WAIT", 3600.0, minimum=1.0)
# Fernet key that encrypts secret env values at rest.
BERTH_SECRETS_KEY = env_fernet_key("BERTH_SECRETS_KEY", STATE_DIR / "secrets.key")

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 300
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Control workers keep their unacknowledged messages under keys of their own: kombu restores every
# message of its unacked hash older than the visibility timeout, and the agents' long tasks (pulls,
# transfers) share the default hash with an hour's timeout (runtime/agent/celery_app.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": BERTH_CONTROL_REDELIVERY,
    "unacked_key": "berth.control.unacked",
    "unacked_index_key": "berth.control.unacked_index",
    "unacked_mutex_key": "berth.control.unacked_mutex",
    # look for such messages every 5 s (kombu's default scans every 10th 10 s tick)
    "unacked_restore_interval": 5, "unacked_restore_throttle": 1,
}
# Agent tasks are sent to "host.<name>" explicitly per call (panel.fleet.dispatch).
CELERY_TASK_ROUTES = {"berth.control.*": {"queue": "control"}}
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_BEAT_SCHEDULE_FILENAME = str(STATE_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "reconcile": {
        "task": "berth.control.reconcile",
        "schedule": BERTH_RECONCILE_INTERVAL,
        "options": {"expires": BERTH_RECONCILE_INTERVAL},
    },
    "check-hosts": {
        "task": "berth.control.check_hosts",
        "schedule": BERTH_RECONCILE_INTERVAL,
        "options": {"expires": BERTH_RECONCILE_INTERVAL},
    },
    # revisions whose engine died (lease expired) or whose deploy message was lost
    "stack-resume-deploys": {
        "task": "berth.control.stack_resume_deploys",
        "schedule": BERTH_RECONCILE_INTERVAL,
        "options": {"expires": BERTH_RECONCILE_INTERVAL},
    },
    "audit-archive": {"task": "berth.control.audit_archive", "schedule": 3600.0},
    "volume-backups": {"task": "berth.control.volume_backups", "schedule": 60.0,
                       "options": {"expires": 60.0}},
    "stack-images": {"task": "berth.control.stack_check_images", "schedule": 900.0},
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Above channels_redis' 5 s blocking pop (redis-py's default read timeout is 5 s too).
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "panel.access.authentication.ApiTokenAuthentication",
        "panel.access.authentication.VerifiedSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["panel.api.permissions.SignedIn"],
    "DEFAULT_PAGINATION_CLASS": "panel.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "panel.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Berth API",
    "DESCRIPTION": "Desired state of containers, images, volumes and networks across hosts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["panel.api.permissions.SignedIn"],
    # Swagger UI from the installed sidecar package, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
