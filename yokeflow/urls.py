"""URL map: pages (login required by middleware), the admin, and the JSON API."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, URLResolver, include, path

from yokeflow.api import api


def _api_urls() -> tuple[list, str, str]:
    """The API authenticates each call itself (401, not a login redirect), except its docs pages."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        if isinstance(pattern, URLPattern) and pattern.name not in ("api-root", "openapi-view", "openapi-json"):
            pattern.callback = login_not_required(pattern.callback)
        assert not isinstance(pattern, URLResolver)
    return patterns, app_name, namespace


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", _api_urls()),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("apps.dashboard.urls")),
]
