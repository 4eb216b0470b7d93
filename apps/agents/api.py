"""/api/sessions and /api/models: agent sessions, their transcripts, and what the models cost.

No `from __future__ import annotations` here: django-ninja reads the signatures' types at runtime.
"""

from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router
from ninja.pagination import paginate

from apps.agents import selectors, services
from apps.agents.models import AgentSession
from apps.agents.providers import deprecated_models, provider_name, provider_notice
from apps.agents.schemas import EventOut, EventsQuery, ModelsOut, PauseIn, SessionDetailOut, SessionOut
from apps.core.api import Pages
from apps.projects.selectors import project_get

router = Router(tags=["sessions"])


def session_for(request: HttpRequest, session_id: str, *, operate: bool = False) -> AgentSession:
    return selectors.session_get(user=request.user, session_id=session_id, operate=operate)


@router.get("/projects/{project_id}/sessions", response=list[SessionOut])
@paginate(Pages)
def list_sessions(request: HttpRequest, project_id: str):
    return selectors.sessions_list(project=project_get(user=request.user, project_id=project_id))


@router.get("/sessions/{session_id}", response=SessionDetailOut)
def get_session(request: HttpRequest, session_id: str):
    session = session_for(request, session_id)
    checkpoint = selectors.checkpoint_get(session=session)
    session.checkpoint_turn = checkpoint.turn if checkpoint else None
    return session


@router.get("/sessions/{session_id}/events", response=list[EventOut])
def list_events(request: HttpRequest, session_id: str, query: Query[EventsQuery]):
    session = session_for(request, session_id)
    return list(selectors.events_list(session=session, after=query.after, limit=query.limit))


@router.post("/sessions/{session_id}/cancel", response=SessionOut)
def cancel_session(request: HttpRequest, session_id: str):
    return services.session_request_cancel(session=session_for(request, session_id, operate=True))


@router.post("/sessions/{session_id}/pause", response=SessionOut)
def pause_session(request: HttpRequest, session_id: str, payload: PauseIn):
    """Pause a queued or running session before its next model call: it becomes a `manual` pause on the
    interventions page, resumed like any other (`POST /api/interventions/{id}/resume`)."""
    return services.session_request_pause(session=session_for(request, session_id, operate=True),
                                          by=request.user.get_username(), reason=payload.reason)


@router.get("/models", response=ModelsOut)
def models(request: HttpRequest):
    return {"provider": provider_name(), "notice": provider_notice(), "tiers": settings.MODEL_TIERS,
            "default_tier": settings.DEFAULT_MODEL_TIER, "deprecated": deprecated_models(),
            "prices": selectors.model_prices()}
