from __future__ import annotations

from django.urls import path

from apps.dashboard.views import costs, expertise, graph, interventions, projects, sessions, worktrees

app_name = "dashboard"
urlpatterns = [
    path("", projects.projects, name="projects"),
    path("projects/<slug:slug>/", projects.project, name="project"),
    path("projects/<slug:slug>/run/start", projects.run_start, name="run_start"),
    path("projects/<slug:slug>/run/cancel", projects.run_cancel, name="run_cancel"),
    path("projects/<slug:slug>/tasks/<str:key>/retry", projects.task_retry, name="task_retry"),
    path("projects/<slug:slug>/sessions/", sessions.sessions, name="sessions"),
    path("sessions/<int:session_id>/", sessions.session, name="session"),
    path("sessions/<int:session_id>/pause", sessions.session_pause, name="session_pause"),
    path("sessions/<int:session_id>/kill", sessions.session_kill, name="session_kill"),
    path("projects/<slug:slug>/graph/", graph.graph, name="graph"),
    path("projects/<slug:slug>/costs/", costs.costs, name="costs"),
    path("projects/<slug:slug>/expertise/", expertise.expertise, name="expertise"),
    path("projects/<slug:slug>/expertise/<slug:domain>/", expertise.expertise_domain, name="expertise_domain"),
    path("projects/<slug:slug>/expertise/<slug:domain>/edit", expertise.expertise_edit, name="expertise_edit"),
    path("projects/<slug:slug>/worktrees/", worktrees.worktrees, name="worktrees"),
    path("projects/<slug:slug>/worktrees/<int:worktree_id>/<str:action>", worktrees.worktree_action,
         name="worktree_action"),
    path("projects/<slug:slug>/budget/approve", interventions.budget_approve, name="budget_approve"),
    path("interventions/", interventions.interventions, name="interventions"),
    path("interventions/<int:pause_id>/resume", interventions.intervention_resume, name="intervention_resume"),
]
