from __future__ import annotations

from django.urls import path

from apps.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.projects, name="projects"),
    path("projects/<slug:slug>/", views.project, name="project"),
]
