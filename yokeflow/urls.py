"""URL map: pages (login required by middleware), the admin, and the JSON API."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, URLResolver, include, path

from apps.core.health import health_view, ready_view
from apps.core.metrics import metrics_view
from yokeflow.api import api


def _api_urls() -> tuple[list, str, str]:
    """The API authenticates each call itself (401, not a login redirect); its schema and docs take a session or a
    bearer token (`yokeflow.api.docs_with_token`); only its root page wants a login."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        if isinstance(pattern, URLPattern) and pattern.name != "api-root":
            pattern.callback = login_not_required(pattern.callback)
        assert not isinstance(pattern, URLResolver)
    return patterns, app_name, namespace


urlpatterns = [
    # Probes and the scrape answer without a login: load balancers and Prometheus have none. /metrics checks its
    # own token or network; /health reveals check names and short messages, never a secret.
    path("health", login_not_required(health_view), name="health"),
    path("ready", login_not_required(ready_view), name="ready"),
    path("metrics", login_not_required(metrics_view), name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", _api_urls()),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("apps.dashboard.urls")),
]
