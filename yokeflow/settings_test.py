"""Test overlay: the real settings plus what makes tests fast and hermetic.

The database still comes from DATABASE_URL (PostgreSQL in CI); without it tests use SQLite.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.pop("ANTHROPIC_API_KEY", None)  # tests never reach the real provider

from yokeflow.settings import *
from yokeflow.settings import VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed: hashing is not under test
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
PROJECTS_ROOT = Path(tempfile.mkdtemp(prefix="yokeflow-projects-"))
ANTHROPIC_API_KEY = None
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_SSL_REDIRECT = False  # the test client and the live server speak plain HTTP; tests/core/test_deploy.py
SECURE_HSTS_SECONDS = 0  # checks the production values
STATIC_ROOT = VAR_DIR / "static-test"
EVENTS_SETTLE_SECONDS = 0.0  # tests read their own committed events at once; one test sets it to check the hold-back
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns once per request handler about a missing root
