"""Agent sessions: a project's list, and one session's page with its live transcript tail, figures, checkpoint,
pause, and the pause and kill buttons."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.agents.models import AgentSession, SessionEvent
from apps.agents.selectors import checkpoint_get, events_list, session_get, sessions_list
from apps.agents.services import session_request_pause
from apps.core.errors import NotFoundError, YokeFlowError
from apps.dashboard.forms import BackForm, SessionKillForm, SessionPauseForm
from apps.dashboard.views.common import project_context, project_for
from apps.interventions.selectors import pause_latest
from apps.orchestration import lifecycle

TAIL = 150  # events shown when the page opens; older ones are a link to the full transcript API
SESSIONS_SHOWN = 200
ERROR_TYPES = frozenset({"llm_error", "guard"})


def sessions(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug)
    rows = sessions_list(project=project)[:SESSIONS_SHOWN]
    return render(request, "dashboard/sessions.html", {**project_context(request, project, "sessions"),
                                                       "sessions": rows})


def _session(request: HttpRequest, session_id: int, *, operate: bool = False) -> AgentSession:
    try:
        return session_get(user=request.user, session_id=session_id, operate=operate)
    except NotFoundError as exc:
        raise Http404(exc.message) from None


def session(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _session(request, session_id)
    after = request.GET.get("after", "")
    if request.htmx and after.isdigit():
        return _tail(request, session, int(after))
    last = session.last_seq
    events = list(events_list(session=session, after=max(0, last - TAIL)))
    context = {**project_context(request, session.project, "sessions"), **_figures(session),
               "events": [transcript_row(event) for event in events], "after": last,
               "skipped": max(0, last - TAIL), "poll_seconds": settings.DASHBOARD_POLL_SECONDS}
    return render(request, "dashboard/session.html", context)


def _tail(request: HttpRequest, session: AgentSession, after: int) -> HttpResponse:
    """New transcript rows (appended out of band), fresh figures, and the poller; 286 once the session ended."""
    events = list(events_list(session=session, after=after, limit=500))
    context = {**project_context(request, session.project, "sessions"), **_figures(session),
               "events": [transcript_row(event) for event in events],
               "after": events[-1].seq if events else after, "poll_seconds": settings.DASHBOARD_POLL_SECONDS,
               "oob": True}
    return render(request, "dashboard/session.html#tail", context, status=286 if session.is_finished else 200)


def _figures(session: AgentSession) -> dict:
    checkpoint = checkpoint_get(session=session)
    pause = pause_latest(session=session)
    return {"session": session, "checkpoint": checkpoint, "pause": pause, "live": not session.is_finished
            and session.status != AgentSession.Status.PAUSED}


def transcript_row(event: SessionEvent) -> dict:
    """One transcript line for the page: what it is, a one-line summary, the full body when there is more."""
    payload = event.payload_shown
    summary, body = _describe(event.type, payload)
    error = event.type in ERROR_TYPES or bool(payload.get("is_error"))
    collapsed = event.type in ("tool_use", "tool_result", "system", "thinking")
    return {"seq": event.seq, "type": event.type, "summary": summary, "body": body, "error": error,
            "collapsed": collapsed, "created": event.created}


def _describe(kind: str, payload: dict) -> tuple[str, str]:
    describe = DESCRIBE.get(kind)
    if describe is None:
        return kind.replace("_", " "), json.dumps(payload, indent=2, default=str)
    return describe(payload)


def _text(payload: dict) -> tuple[str, str]:
    text = str(payload.get("text") or "")
    first = text.strip().splitlines()[0] if text.strip() else ""
    return (first[:160], text) if len(text) > 160 or "\n" in text.strip() else (text, "")


def _tool_use(payload: dict) -> tuple[str, str]:
    arguments = payload.get("input") or {}
    hint = next((str(arguments[k]) for k in ("command", "path", "pattern") if isinstance(arguments, dict)
                 and arguments.get(k)), "")
    return f"{payload.get('name', 'tool')}({hint[:120]})", json.dumps(arguments, indent=2, default=str)


def _tool_result(payload: dict) -> tuple[str, str]:
    content = payload.get("content")
    text = content if isinstance(content, str) else json.dumps(content, indent=2, default=str)
    state = "error" if payload.get("is_error") else "ok"
    return f"{payload.get('name', 'tool')} → {state} ({len(text.splitlines())} lines)", text


def _llm_call(payload: dict) -> tuple[str, str]:
    usage = payload.get("usage") or {}
    return (f"turn {payload.get('turn')}: {usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out, "
            f"${payload.get('cost_usd', '0')}, {payload.get('latency_ms', 0)} ms", "")


def _guard(payload: dict) -> tuple[str, str]:
    return f"{payload.get('action', 'stop')}: {payload.get('reason', '')}", json.dumps(
        payload.get("details") or {}, indent=2, default=str)


def _end(payload: dict) -> tuple[str, str]:
    return " · ".join(f"{k} {v}" for k, v in payload.items() if v not in (None, "", {}, []))[:300], ""


DESCRIBE: dict[str, Callable[[dict], tuple[str, str]]] = {
    "text": _text, "user": _text, "thinking": _text, "system": lambda p: ("system prompt", str(p.get("text", ""))),
    "tool_use": _tool_use, "tool_result": _tool_result, "llm_call": _llm_call, "guard": _guard,
    "llm_error": lambda p: (f"{p.get('code', 'error')}: {p.get('message', '')}", ""),
    "session_start": _end, "session_end": _end, "resume": _end,
}


# ------------------------------------------------------------------------------------------------ actions


def _act(request: HttpRequest, session_id: int, form: BackForm, action: Callable[[AgentSession, dict], object],
         done: str) -> HttpResponse:
    session = _session(request, session_id)
    try:
        values = form.checked()
        action(_session(request, session_id, operate=True), values)
    except YokeFlowError as exc:  # a viewer, a finished session, a bad field: the reason on the page
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    back = form.back()  # the dashboard's buttons come back to the dashboard
    return redirect(back) if back else redirect("dashboard:session", session_id=session.pk)


@require_POST
def session_pause(request: HttpRequest, session_id: int) -> HttpResponse:
    by = request.user.get_username()
    return _act(request, session_id, SessionPauseForm(request.POST, request=request),
                lambda s, values: session_request_pause(session=s, by=by, reason=values["reason"]),
                f"Session #{session_id} pauses before its next model call")


@require_POST
def session_kill(request: HttpRequest, session_id: int) -> HttpResponse:
    return _act(request, session_id, SessionKillForm(request.POST, request=request),
                lambda s, values: lifecycle.session_kill(session=s),
                f"Session #{session_id} is being stopped")
