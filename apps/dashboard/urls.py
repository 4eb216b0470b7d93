from __future__ import annotations

from django.urls import path

from apps.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.projects, name="projects"),
    path("projects/<slug:slug>/", views.project, name="project"),
    path("interventions/", views.interventions, name="interventions"),
    path("interventions/<int:pause_id>/resume", views.intervention_resume, name="intervention_resume"),
    path("projects/<slug:slug>/budget/approve", views.budget_approve, name="budget_approve"),
]
