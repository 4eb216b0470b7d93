"""YokeFlow settings: every value comes from the environment through the small helpers below.

The helpers fail loudly (ImproperlyConfigured naming the variable and what was wrong) so a typo in a
deployment shows up at start-up rather than as odd behaviour later. A check of several values at once calls
`_invalid` too, never `raise` inline, so `yokeflow config validate` (collect mode) sees every problem in one
import. There is one settings module for every environment; `settings_test.py` only overlays what tests need.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# Collect mode (`yokeflow config validate`, yokeflow/config.py): with YOKEFLOW_CONFIG_CHECK=1 a helper that finds a
# bad value records (NAME, problem) here and returns its default instead of raising, so one run can report every
# problem rather than only the first.
config_problems: list[tuple[str, str]] = []


def _collecting() -> bool:
    return os.environ.get("YOKEFLOW_CONFIG_CHECK") == "1"


def _invalid[T](name: str, problem: str, default: T) -> T:
    """Refuse a bad value: raise, or in collect mode record the problem and go on with `default`."""
    if not _collecting():
        raise ImproperlyConfigured(problem)
    if (name, problem) not in config_problems:  # a helper may read the same variable twice
        config_problems.append((name, problem))
    return default


def _redacted(url: str) -> str:
    # A database URL's password must not end up in an error message (they are printed and logged).
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value.strip()


def envbool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    return _invalid(name, f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {value!r}", default)


def envchoice(name: str, default: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    value = env(name, default) or default
    value = value.upper() if upper else value
    if value not in choices:
        return _invalid(name, f"{name}: {value!r} is not one of {', '.join(choices)}", default)
    return value


def envint(name: str, default: int, *, minimum: int | None = None) -> int:
    return _envnumber(name, default, int, "an integer", minimum)


def envfloat(name: str, default: float, *, minimum: float | None = None) -> float:
    return _envnumber(name, default, float, "a number", minimum)


def _envnumber(name, default, kind, label, minimum):
    value = env(name)
    if value is None or value == "":
        return default
    try:
        number = kind(value)
    except ValueError:
        return _invalid(name, f"{name} must be {label}, got {value!r}", default)
    if minimum is not None and number < minimum:
        return _invalid(name, f"{name} must be at least {minimum}, got {number}", default)
    return number


def envlist(name: str, default: list[str]) -> list[str]:
    value = env(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def envsecret(name: str, *, required: bool = False, fallback: str | None = None) -> str | None:
    """A secret: never has a default in production. `fallback` is only for development (DEBUG)."""
    value = env(name) or None
    if value is None and fallback is not None:
        return fallback
    if value is None and required:
        return _invalid(name, f"{name} is not set; it is required (set DEBUG=1 for a development default)", None)
    return value


def envurl(name: str, default: str | None = None) -> str | None:
    value = env(name) or default
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return _invalid(name, f"{name} must be an http(s) URL, got {value!r}", default)
    return value.rstrip("/")


def _database_config(name: str, value: str) -> dict | None:
    try:
        # Pooled connections are health-checked before reuse: one the server dropped is replaced, not failed on.
        config = dj_database_url.parse(value, conn_max_age=envint("DB_CONN_MAX_AGE", 60, minimum=0),
                                       conn_health_checks=True)
    except ValueError as exc:
        return _invalid(name, f"{name} is not a valid database URL ({exc}): {_redacted(value)!r}", None)
    if not config.get("ENGINE"):
        return _invalid(name, f"{name} has an unsupported scheme: {_redacted(value)!r}", None)
    return config


def _fernet_key_ok(key: str) -> bool:
    """A Fernet key is 32 bytes in URL-safe base64; anything else is refused naming its position, never its value."""
    try:
        ok = len(base64.urlsafe_b64decode(key.encode())) == 32
    except (ValueError, binascii.Error):
        ok = False
    return ok or _invalid("ENCRYPTION_KEYS", "ENCRYPTION_KEYS: a key is not a Fernet key (32 bytes, URL-safe "
                          "base64); generate one with cryptography's Fernet.generate_key()", False)


def envdatabase(name: str, default: str) -> dict:
    # In collect mode a bad URL has been recorded; the default keeps the remaining settings checkable.
    config = _database_config(name, env(name) or default) or _database_config(name, default)
    if config["ENGINE"].endswith("sqlite3"):
        # SQLite is the single-machine default; WAL and a busy timeout keep the web process and the
        # workers from failing with "database is locked" while they share the file.
        # Writing transactions start IMMEDIATE: a deferred one that later writes fails at once with "database is
        # locked" instead of waiting (SQLite cannot upgrade its lock); immediate ones wait up to the timeout.
        config["OPTIONS"] = {"timeout": envint("SQLITE_TIMEOUT", 30, minimum=1), "transaction_mode": "IMMEDIATE",
                             "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
        config["CONN_MAX_AGE"] = 0
        if config["NAME"] not in ("", ":memory:"):
            folder = Path(config["NAME"]).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                _invalid(name, f"{name}: cannot create the SQLite file's directory {folder} ({exc.strerror})", None)
    return config


DEBUG = envbool("DEBUG", False)
SECRET_KEY = envsecret("SECRET_KEY", required=True, fallback="dev-only-insecure-key" if DEBUG else None)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

PROJECTS_ROOT = Path(env("PROJECTS_ROOT") or VAR_DIR / "projects").resolve()
# Fernet keys for secrets stored in the database (first encrypts, all decrypt); empty: derived from SECRET_KEY.
ENCRYPTION_KEYS = [key for key in envlist("ENCRYPTION_KEYS", []) if _fernet_key_ok(key)]
ANTHROPIC_API_KEY = envsecret("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = envurl("ANTHROPIC_BASE_URL")
ANTHROPIC_TIMEOUT = envint("ANTHROPIC_TIMEOUT", 300, minimum=1)  # seconds per request
ANTHROPIC_MAX_RETRIES = envint("ANTHROPIC_MAX_RETRIES", 4, minimum=0)  # the SDK backs off on 429/529/5xx
# Which provider plays the model: "auto" uses Claude when ANTHROPIC_API_KEY is set and the offline replay
# model otherwise; "replay" forces the replay model even with a key.
LLM_PROVIDER = envchoice("LLM_PROVIDER", "auto", ("auto", "anthropic", "replay"))
MODEL_TIERS = {
    "haiku": env("MODEL_HAIKU", "claude-haiku-5-5"),
    "sonnet": env("MODEL_SONNET", "claude-sonnet-5-5"),
    "opus": env("MODEL_OPUS", "claude-opus-5-5"),
}
DEFAULT_MODEL_TIER = envchoice("DEFAULT_MODEL_TIER", "sonnet", tuple(MODEL_TIERS))
# The replay model reads `<REPLAY_ROOT>/<project slug>/replay/<planning|TASK KEY>.json`.
REPLAY_ROOT = Path(env("REPLAY_ROOT") or BASE_DIR / "examples").resolve()
# Simulated model latency for the offline replay model: every scripted turn takes at least this long (the demo
# sets it so parallel and sequential runs can be compared; tests and CI leave it at 0).
REPLAY_TURN_SECONDS = envfloat("REPLAY_TURN_SECONDS", 0.0, minimum=0.0)
AGENT_MAX_TURNS = envint("AGENT_MAX_TURNS", 60, minimum=1)
AGENT_MAX_TOKENS = envint("AGENT_MAX_TOKENS", 8192, minimum=256)  # output tokens per model call
COMMAND_TIMEOUT = envint("COMMAND_TIMEOUT", 120, minimum=1)  # seconds for one run_command / acceptance test
# The jail (apps/agents/jail.py): "jail" runs every agent or member command in bubblewrap and refuses to run
# them when it cannot; "policy" runs them unjailed with only the command guard-rail (unsafe, warned everywhere).
SANDBOX = envchoice("SANDBOX", "jail", ("jail", "policy"))
SANDBOX_BWRAP = env("SANDBOX_BWRAP", "")  # the bwrap binary; empty: found on PATH
SANDBOX_CGROUP = env("SANDBOX_CGROUP", "")  # a delegated cgroup v2 directory for the jails' cgroups
SANDBOX_READONLY_PATHS = envlist("SANDBOX_READONLY_PATHS", [])  # more host paths the jail sees read-only
# Egress of the `registries` network mode: allowed host names (`*.x` for sub-domains), ports, and pinned names
# (`name=host:port`, e.g. an internal mirror: the only way to reach a non-public address).
SANDBOX_REGISTRIES = envlist("SANDBOX_REGISTRIES", [
    "pypi.org", "files.pythonhosted.org", "registry.npmjs.org", "registry.yarnpkg.com", "crates.io",
    "static.crates.io", "index.crates.io", "proxy.golang.org", "sum.golang.org", "rubygems.org"])
SANDBOX_EGRESS_PORTS = [int(p) for p in envlist("SANDBOX_EGRESS_PORTS", ["80", "443"]) if p.isdigit()]
SANDBOX_EGRESS_PINS = envlist("SANDBOX_EGRESS_PINS", [])
SESSION_LEASE_SECONDS = envint("SESSION_LEASE_SECONDS", 60, minimum=5)
# Parallel runs (apps/orchestration): retries, backpressure, worktree bootstrap and the repository lock.
TASK_MAX_ATTEMPTS = envint("TASK_MAX_ATTEMPTS", 3, minimum=1)  # failed or lost attempts before a task pauses
RUN_QUEUE_LIMIT = envint("RUN_QUEUE_LIMIT", 500, minimum=1)  # queued jobs beyond which new runs are refused
REAPER_INTERVAL_MINUTES = envint("REAPER_INTERVAL_MINUTES", 1, minimum=1)  # the django-q2 schedule (a backstop)
# `yokeflow worker` reaps this often itself, so a dead worker's session or merge is resumed within the lease.
REAPER_SECONDS = envfloat("REAPER_SECONDS", 10.0, minimum=0.5)
# A queued session whose job has not started for this long gets its job again (a broker can lose one).
# (one lease by default: the session rows are the truth, a job no live worker holds is given out again)
QUEUED_STALL_SECONDS = envint("QUEUED_STALL_SECONDS", SESSION_LEASE_SECONDS, minimum=5)
SETUP_TIMEOUT = envint("SETUP_TIMEOUT", 600, minimum=1)  # seconds for a project's worktree setup command
REPO_LOCK_TIMEOUT = envint("REPO_LOCK_TIMEOUT", 900, minimum=1)  # seconds to wait for another merge
WORKTREE_PORT_START = envint("WORKTREE_PORT_START", 20000, minimum=1024)
WORKTREE_PORT_END = envint("WORKTREE_PORT_END", 29999, minimum=1024)
WORKTREE_PORT_COUNT = envint("WORKTREE_PORT_COUNT", 10, minimum=1)

# Interventions (apps/interventions): detectors, notifications, provider holds, auto-recovery.
INTERVENTION_MAX_RETRIES = envint("INTERVENTION_MAX_RETRIES", 2, minimum=1)  # same failing command, then pause
SITE_URL = (envurl("SITE_URL") or "http://localhost:8000").rstrip("/")  # links in notifications
NOTIFY_TIMEOUT = envfloat("NOTIFY_TIMEOUT", 10.0, minimum=0.1)  # seconds per notification request
NOTIFY_RETRIES = envint("NOTIFY_RETRIES", 3, minimum=1)  # tries per channel and recipient
NOTIFY_BACKOFF = envfloat("NOTIFY_BACKOFF", 1.0, minimum=0.0)  # seconds before the 2nd try, doubling after
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "YokeFlow <yokeflow@localhost>")
TWILIO_API_BASE = (envurl("TWILIO_API_BASE") or "https://api.twilio.com").rstrip("/")
TWILIO_ACCOUNT_SID = envsecret("TWILIO_ACCOUNT_SID")
TWILIO_AUTH_TOKEN = envsecret("TWILIO_AUTH_TOKEN")
TWILIO_FROM_NUMBER = env("TWILIO_FROM_NUMBER", "")
RATE_LIMIT_DEFAULT_HOLD = envint("RATE_LIMIT_DEFAULT_HOLD", 60, minimum=1)  # seconds, when no reset is given
RATE_LIMIT_MAX_HOLD = envint("RATE_LIMIT_MAX_HOLD", 3600, minimum=1)  # never hold longer than this
CIRCUIT_FAILURE_THRESHOLD = envint("CIRCUIT_FAILURE_THRESHOLD", 5, minimum=1)  # failed calls in a row → open
CIRCUIT_COOLDOWN = envint("CIRCUIT_COOLDOWN", 120, minimum=1)  # seconds the circuit stays open
RECOVERY_PIP_ALLOWLIST = envlist("RECOVERY_PIP_ALLOWLIST", [
    "requests", "httpx", "pytest", "pyyaml", "python-dotenv", "flask", "fastapi", "uvicorn", "sqlalchemy",
    "psycopg", "redis", "pydantic", "click", "rich", "jinja2", "attrs", "numpy", "pandas"])
RECOVERY_PIP_ARGS = envlist("RECOVERY_PIP_ARGS", [])  # e.g. --index-url for a private mirror
RECOVERY_TIMEOUT = envint("RECOVERY_TIMEOUT", 300, minimum=1)  # seconds for one recovery action

# Learning and costs (apps/learning): expertise memory, model choice, budgets.
EXPERTISE_MAX_LINES = envint("EXPERTISE_MAX_LINES", 1000, minimum=20)  # an expertise file is pruned to this
EXPERTISE_PROMPT_LINES = envint("EXPERTISE_PROMPT_LINES", 60, minimum=5)  # lines of it put in a coding prompt
EXPERTISE_FAILURE_MAX_AGE_DAYS = envint("EXPERTISE_FAILURE_MAX_AGE_DAYS", 30, minimum=1)  # validation prunes older
# Model choice: a task's complexity score (0..1) is the weighted mean of four dimensions (see model_selector.py);
# below MODEL_HAIKU_BELOW it gets Haiku, from MODEL_OPUS_FROM on Opus, Sonnet between.
MODEL_COMPLEXITY_WEIGHTS = {
    "reasoning_depth": envfloat("MODEL_WEIGHT_REASONING", 0.35, minimum=0.0),
    "code_complexity": envfloat("MODEL_WEIGHT_CODE", 0.30, minimum=0.0),
    "domain_specificity": envfloat("MODEL_WEIGHT_DOMAIN", 0.15, minimum=0.0),
    "context_requirements": envfloat("MODEL_WEIGHT_CONTEXT", 0.20, minimum=0.0),
}
if not sum(MODEL_COMPLEXITY_WEIGHTS.values()) > 0:
    MODEL_COMPLEXITY_WEIGHTS = _invalid("MODEL_WEIGHT_*", "MODEL_WEIGHT_*: at least one complexity weight must be "
                                        "above 0", dict.fromkeys(MODEL_COMPLEXITY_WEIGHTS, 0.25))
MODEL_HAIKU_BELOW = envfloat("MODEL_HAIKU_BELOW", 0.25, minimum=0.0)
MODEL_OPUS_FROM = envfloat("MODEL_OPUS_FROM", 0.55, minimum=0.0)
if not MODEL_HAIKU_BELOW <= MODEL_OPUS_FROM <= 1:
    MODEL_HAIKU_BELOW, MODEL_OPUS_FROM = _invalid("MODEL_HAIKU_BELOW", "need 0 <= MODEL_HAIKU_BELOW <= "
                                                  "MODEL_OPUS_FROM <= 1", (0.25, 0.55))
MODEL_HISTORY_MIN_SESSIONS = envint("MODEL_HISTORY_MIN_SESSIONS", 3, minimum=1)  # before history shifts a choice
MODEL_HISTORY_UPGRADE_BELOW = envfloat("MODEL_HISTORY_UPGRADE_BELOW", 0.6, minimum=0.0)  # success rate → tier up
MODEL_HISTORY_DOWNGRADE_FROM = envfloat("MODEL_HISTORY_DOWNGRADE_FROM", 0.9, minimum=0.0)  # cheaper tier this good
MODEL_BUDGET_DOWNGRADE_AT = envfloat("MODEL_BUDGET_DOWNGRADE_AT", 0.8, minimum=0.0)  # budget share spent → tier down

# Live pages and the event feed
DASHBOARD_POLL_SECONDS = envfloat("DASHBOARD_POLL_SECONDS", 2.0, minimum=0.2)  # how often live regions refresh
# On PostgreSQL, transactions commit out of id order: the feed holds back events younger than this so a client
# polling with ?after=SEQ does not step over an event whose transaction commits a moment later.
EVENTS_SETTLE_SECONDS = envfloat("EVENTS_SETTLE_SECONDS", 1.0, minimum=0.0)
EVENTS_STREAM_SECONDS = envint("EVENTS_STREAM_SECONDS", 300, minimum=1)  # one SSE response, then the client reconnects
# Networks (CIDR) webhooks may reach although they are not public: a receiver on the LAN. Empty: public only.
WEBHOOK_ALLOWED_NETS = envlist("WEBHOOK_ALLOWED_NETS", [])
BUDGET_APPROVE_MIN = envint("BUDGET_APPROVE_MIN", 1, minimum=1)  # dollars suggested at least by a budget pause

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "ninja",
    "axes",  # login throttling and lockout
    "apps.core",
    "apps.projects",
    "apps.agents",
    "apps.orchestration",
    "apps.interventions",
    "apps.learning",
    "apps.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from the app itself (the container has no nginx)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.core.middleware.RequestContextMiddleware",  # correlation id, who and from where; request metrics
    # Every page needs a login unless a view opts out explicitly (the JSON API authenticates itself).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it answers a locked-out login with the lockout page
]

ROOT_URLCONF = "yokeflow.urls"
WSGI_APPLICATION = "yokeflow.wsgi.application"

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
                "apps.dashboard.context.jail",
            ],
        },
    },
]

DATABASES = {"default": envdatabase("DATABASE_URL", f"sqlite:///{VAR_DIR / 'yokeflow.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failures for one username, or from one address, further
# tries — with the right password too — are refused for LOGIN_LOCKOUT_MINUTES. Staff unlock with
# `yokeflow unlock` or by deleting the attempts in the admin; every success, failure, lockout and unlock is audited.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", 30, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: per user and per address
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # our own audit log and log lines say it

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:projects"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# HTTPS. Off DEBUG: plain HTTP is redirected (the probes and the scrape excepted: load balancers call them over
# HTTP) and browsers are told to use HTTPS only, for a year, subdomains included (SECURE_HSTS_SECONDS=0 turns
# that off: once a browser has seen it, it cannot be taken back before it expires). Behind a proxy that ends TLS,
# SECURE_PROXY_SSL_HEADER names the header it sets (e.g. X-Forwarded-Proto) — only when the proxy always sets it.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", not DEBUG)
_PROXY_SSL_HEADER = env("SECURE_PROXY_SSL_HEADER", "")
SECURE_PROXY_SSL_HEADER = (("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https")
                           if _PROXY_SSL_HEADER else None)

# Content security policy (Django's own): every script is a file of this site — no inline script, no eval, no
# other origin — so injected markup cannot run. Styles may be inline (mermaid and htmx write <style> elements;
# a style cannot run code); images may be data: URLs (charts).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# Email (notifications): SMTP from EMAIL_HOST …; without a host, mail is printed to the console.
_EMAIL_HOST = env("EMAIL_HOST")
MAILERS = {"default": {
    "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    "OPTIONS": {"host": _EMAIL_HOST, "port": envint("EMAIL_PORT", 587, minimum=1),
                "username": env("EMAIL_USER", ""), "password": envsecret("EMAIL_PASSWORD") or "",
                "use_tls": envbool("EMAIL_USE_TLS", True), "timeout": 10},
} if _EMAIL_HOST else {"BACKEND": "django.core.mail.backends.console.EmailBackend" if DEBUG
                       else "apps.core.mail.UnconfiguredEmailBackend"}}  # email is optional

# django-q2: the ORM broker needs no extra service; every long action is a job on it.
_Q_TIMEOUT = envint("Q_TIMEOUT", 3600, minimum=1)
Q_CLUSTER = {
    "name": "yokeflow",
    "orm": "default",
    "workers": envint("Q_WORKERS", 2, minimum=1),
    "timeout": _Q_TIMEOUT,
    "retry": _Q_TIMEOUT + 60,  # must exceed timeout or jobs run twice
    # How long the ORM broker sleeps when its queue is empty: the floor of dispatch latency (django-q2's 0.2 s).
    "poll": envfloat("Q_POLL", 0.05, minimum=0.01),
    "max_attempts": 1,
    "catch_up": False,
    "label": "Jobs",
}

# Plans of thousands of tasks are legitimate request bodies; anything larger answers 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("MAX_REQUEST_BYTES", 20 * 1024 * 1024, minimum=1024)
API_PAGE_SIZE = envint("API_PAGE_SIZE", 100, minimum=1)
NINJA_PAGINATION_PER_PAGE = API_PAGE_SIZE
NINJA_MAX_PER_PAGE_SIZE = 1000  # the name django-ninja reads (NINJA_PAGINATION_MAX_PER_PAGE_SIZE is not one)

# Logs: structlog, JSON lines in production and readable lines in development (apps/core/logging.py). Errors are
# written whatever LOG_LEVEL says. Secrets are redacted from every line.
LOG_LEVEL = envchoice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True)
LOG_FORMAT = envchoice("LOG_FORMAT", "console" if DEBUG else "json", ("json", "console"))
LOGGING_CONFIG = None  # apps.core.logging configures logging once Django's apps are ready
# Metrics at /metrics: open to a bearer token (METRICS_TOKEN) or to clients from these networks (CIDR list).
METRICS_TOKEN = envsecret("METRICS_TOKEN")
METRICS_ALLOWED_NETS = envlist("METRICS_ALLOWED_NETS", ["127.0.0.1/32", "::1/128"])
# Start-up waits this long at most for the database (exponential backoff from 0.5 s), then gives up loudly.
DB_WAIT_SECONDS = envfloat("DB_WAIT_SECONDS", 60.0, minimum=0.0)
HEALTH_DISK_MIN_MB = envint("HEALTH_DISK_MIN_MB", 500, minimum=0)  # free space under PROJECTS_ROOT below = not ready
HEALTH_WORKER_SECONDS = envint("HEALTH_WORKER_SECONDS", 120, minimum=5)  # a worker silent this long counts as gone
