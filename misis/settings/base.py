"""Settings shared by every environment. Every URL and secret comes from the environment."""

from pathlib import Path

import django_stubs_ext
from kombu import Queue

from misis.settings.env import env

# How scenarios run (runs.py), their sources (sources.py), inference (inference.py) and the
# events analytics sends out (events.py): each group in its own module, all of it settings here.
from misis.settings.events import *  # noqa: F403
from misis.settings.inference import *  # noqa: F403
from misis.settings.retention import *  # noqa: F403
from misis.settings.retention import MISIS_RETENTION_INTERVAL
from misis.settings.runs import *  # noqa: F403
from misis.settings.runs import MISIS_TICK_INTERVAL
from misis.settings.sources import *  # noqa: F403

# Django classes subscriptable at runtime (admin.ModelAdmin[Scenario]), as django-stubs
# types them: the annotations mypy checks (./run.sh --test) are also valid Python.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env("DJANGO_SECRET_KEY")
DEBUG: bool = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=[])

INSTALLED_APPS = [
    "misis.apps.MisisAdminConfig",  # django.contrib.admin, its login throttled
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_fsm",
    "psqlextra",
    "sources",
    "scenarios",
    "runner",
    "inference",
    "videos",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "misis.urls"
WSGI_APPLICATION = "misis.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/misis")}
# django-postgres-extra's engine (Django's PostgreSQL backend plus partitioned tables): the
# predictions and events are partitioned by day (scenarios/retention.py). It would create the
# hstore extension on connect; nothing here uses hstore.
DATABASES["default"]["ENGINE"] = "psqlextra.backend"
POSTGRES_EXTRA_AUTO_EXTENSION_SET_UP = False
# A pool of connections per process, shared by its threads: a runner process with 64 scenario
# threads holds at most MISIS_DB_POOL_MAX connections, not 64 (PostgreSQL allows 100 by
# default). Threads hand their connection back after each unit of work. 0 turns pooling off.
MISIS_DB_POOL_MAX: int = env.int("MISIS_DB_POOL_MAX", default=8)
# Test a connection before use (with the pool: as it leaves the pool). After a database restart
# the pool holds broken connections; handing one out would fail the request that gets it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if MISIS_DB_POOL_MAX > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # required with a pool
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": MISIS_DB_POOL_MAX,
        "timeout": env.float("MISIS_DB_POOL_TIMEOUT", default=10.0),
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

STORAGES = {
    # Django's own; nothing of ours stores through it.
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # Uploaded videos (POST /video/): under MISIS_VIDEO_ROOT, so that the source an upload
    # returns is a relative path the runner already reads; the bucket when S3 is configured.
    "videos": {"BACKEND": "sources.backends.VideoFileSystemStorage"},
}
AWS_STORAGE_BUCKET_NAME: str = env("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["videos"] = {"BACKEND": "sources.backends.VideoS3Storage"}
    AWS_S3_ENDPOINT_URL: str | None = env("AWS_S3_ENDPOINT_URL", default=None)
    AWS_S3_REGION_NAME: str | None = env("AWS_S3_REGION_NAME", default=None)
    # "path" for S3-compatible stores addressed by IP or a single host name (SeaweedFS, MinIO);
    # unset: boto3 decides (virtual-hosted on AWS). The keys come from AWS_ACCESS_KEY_ID and
    # AWS_SECRET_ACCESS_KEY in the environment, read by boto3 itself.
    AWS_S3_ADDRESSING_STYLE: str | None = env("AWS_S3_ADDRESSING_STYLE", default=None)
# The buckets s3:// sources may name. The service's credentials may read more buckets than
# that; a user must not reach them through a scenario. Default: the upload bucket (none
# without S3, which turns s3:// sources off).
MISIS_S3_BUCKETS: list[str] = env.list(
    "MISIS_S3_BUCKETS", default=[AWS_STORAGE_BUCKET_NAME] if AWS_STORAGE_BUCKET_NAME else []
)
# A bigger upload is refused from its Content-Length, before the body is read.
MISIS_UPLOAD_MAX_BYTES: int = env.int("MISIS_UPLOAD_MAX_BYTES", default=2 * 1024**3)
# Bytes of uploads each user may keep stored, all uploads together; 0: no limit.
MISIS_QUOTA_UPLOAD_BYTES: int = env.int("MISIS_QUOTA_UPLOAD_BYTES", default=20 * 1024**3)
# Uploaded files above this size stream to a temporary file instead of memory (Django's default,
# written out so that nobody raises it towards MISIS_UPLOAD_MAX_BYTES).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Form fields and JSON bodies besides files: the API takes no large one.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# A JSON body (misis.parsers): refused with 413 above this many bytes, from its Content-Length
# before it is read and again while it is read; refused with 400 when its arrays and objects
# nest deeper than this (json.loads recurses once per level).
MISIS_JSON_MAX_BYTES: int = env.int("MISIS_JSON_MAX_BYTES", default=1024 * 1024)
MISIS_JSON_MAX_DEPTH: int = env.int("MISIS_JSON_MAX_DEPTH", default=32)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bounded in size (MISIS_JSON_MAX_BYTES, 413) and depth (MISIS_JSON_MAX_DEPTH, 400).
    "DEFAULT_PARSER_CLASSES": ["misis.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "misis.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Counted in Redis, so the limits hold across API processes and machines.
    "DEFAULT_THROTTLE_CLASSES": ["misis.throttling.AnonThrottle", "misis.throttling.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("MISIS_THROTTLE_ANON", default="120/min"),
        "user": env("MISIS_THROTTLE_USER", default="6000/min"),
    },
    # Proxies in front of the API that append to X-Forwarded-For; 0: the header is ignored
    # (anyone can write it) and the peer address is the client (misis.throttling).
    "NUM_PROXIES": env.int("MISIS_NUM_PROXIES", default=0),
}
# The dashboard's session login (dashboard/): logged-out pages redirect to it.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
# POSTs to /admin/login/ and /login/, per client address and per username (misis.admin_site,
# dashboard.views).
MISIS_THROTTLE_LOGIN: str = env("MISIS_THROTTLE_LOGIN", default="10/min")

# OpenAPI 3 schema at /api/schema/, Swagger UI at /api/docs/ (both without a token).
SPECTACULAR_SETTINGS = {
    "TITLE": "MISIS Video Analytics API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "Start, stop and watch video analytics scenarios (an RTSP, ONVIF, HTTP, S3 or local-file"
        " source analysed by an object detector) and read their predictions page by page."
        " Every endpoint except `/health/` needs `Authorization: Token <key>`."
    ),
    "COMPONENT_SPLIT_REQUEST": True,
    # The same choices appear on several serializers: give each enum one stable name.
    "ENUM_NAME_OVERRIDES": {
        "ScenarioStatusEnum": "scenarios.models.Status",
        "StopReasonEnum": "scenarios.models.StopReason",
        "HealthStateEnum": ["ok", "error"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "misis.schema.close_request_bodies",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Lifetime of a signed preview link (scenarios/preview_links.py), seconds: the page it opens
# stops refreshing after that; GET /scenario/<id>/ gives a fresh one (preview_url).
MISIS_PREVIEW_LINK_TTL: int = env.int("MISIS_PREVIEW_LINK_TTL", default=3600)

# --- Redis and Celery ------------------------------------------------------------------------
REDIS_URL: str = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Connections a process may open to Redis, shared by its threads (redis-py's own default is
# 100). A runner thread holds one while it waits for its next detection (a BLPOP of up to
# 50 ms), so a runner process with 250 scenarios can need that many at once; past the limit a
# thread waits up to MISIS_REDIS_POOL_TIMEOUT seconds for one to come back.
MISIS_REDIS_MAX_CONNECTIONS: int = env.int("MISIS_REDIS_MAX_CONNECTIONS", default=1000)
MISIS_REDIS_POOL_TIMEOUT: float = env.float("MISIS_REDIS_POOL_TIMEOUT", default=10.0)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "misis:cache",
    }
}

CELERY_BROKER_URL: str = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Runner tasks live for hours. They are acknowledged on receipt (acks_late off) so that the
# Redis broker never redelivers them after visibility_timeout; a runner that dies is replaced by
# the watchdog, and the lease + epoch fence (not the broker) keeps one runner per scenario.
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "orchestrator"
CELERY_TASK_QUEUES = (Queue("orchestrator"), Queue("runner"), Queue("inference"))
CELERY_TASK_ROUTES = {
    "runner.*": {"queue": "runner"},
    "inference.*": {"queue": "inference"},
    "scenarios.*": {"queue": "orchestrator"},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False

MISIS_VIDEO_ROOT = Path(env("MISIS_VIDEO_ROOT", default=str(BASE_DIR / "media" / "videos")))

# One entry a second, not one per job: each entry costs beat a wake-up and a publish, and the
# orchestrator a task, on cores a node's detector shares (three 1-s entries cost 38 ms of CPU
# a second idle, the one entry about 20: README, "Detection").
CELERY_BEAT_SCHEDULE = {
    "tick": {
        "task": "scenarios.tick",
        "schedule": MISIS_TICK_INTERVAL,
        "options": {"expires": 10},
    },
    "retention": {
        "task": "scenarios.retention",
        "schedule": MISIS_RETENTION_INTERVAL,
        "options": {"expires": MISIS_RETENTION_INTERVAL},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scenario": {"()": "misis.logs.ScenarioFilter"}},
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(processName)s %(name)s "
            "[scenario %(scenario_id)s]: %(message)s"
        },
        "json": {"()": "misis.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env("MISIS_LOG_FORMAT", default="plain"),
            "filters": ["scenario"],
        }
    },
    "root": {"handlers": ["console"], "level": env("MISIS_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The relay and the watchdog run every second: their receipts would drown the log.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
    },
}
