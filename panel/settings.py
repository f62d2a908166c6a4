"""Berth panel settings: one module, driven by the environment (see README, Configuration)."""

from __future__ import annotations

from pathlib import Path

from panel.env import (
    env_bool,
    env_database,
    env_fernet_key,
    env_float,
    env_list,
    env_redis_url,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(env_str("BERTH_STATE_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("BERTH_DEBUG", False)
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
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "panel.audit",
    "panel.fleet",
    "panel.workloads",
    "panel.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "panel.audit.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = STATE_DIR / "collected-static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Control plane (issue 4) ---------------------------------------------------------------------
REDIS_URL = env_redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
# Seconds of heartbeat silence after which a host counts as down.
BERTH_HOST_DOWN_AFTER = env_float("BERTH_HOST_DOWN_AFTER", 15.0, minimum=1.0)
# Seconds a host stays down before its restartable containers move to another host.
BERTH_RESCHEDULE_AFTER = env_float("BERTH_RESCHEDULE_AFTER", 30.0, minimum=0.0)
# How often the control worker's beat runs reconcile and the host-down check.
BERTH_RECONCILE_INTERVAL = env_float("BERTH_RECONCILE_INTERVAL", 5.0, minimum=0.5)
# A container still out of sync this long after its last apply gets the apply sent again.
BERTH_REAPPLY_AFTER = env_float("BERTH_REAPPLY_AFTER", 30.0, minimum=0.5)
# Seconds to wait for an agent's answer to logs/stats before the API answers 504.
BERTH_RPC_TIMEOUT = env_float("BERTH_RPC_TIMEOUT", 10.0, minimum=0.1)
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
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
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
    # Swagger UI from the installed sidecar package, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
