"""/api: start planning and runs, continue sessions. Each call queues a job for the workers (202).

No `from __future__ import annotations` here: django-ninja reads the signatures' types at runtime.
"""

from django.http import HttpRequest
from ninja import Router, Schema, Status

from apps.agents.schemas import ContinueIn, SessionOut
from apps.agents.selectors import session_get
from apps.orchestration import runs
from apps.projects.schemas import TaskOut
from apps.projects.selectors import project_get, task_get

router = Router(tags=["runs"])


class RunOut(Schema):
    project_id: int
    slug: str
    status: str


@router.post("/projects/{project_id}/planning", response={202: SessionOut})
def start_planning(request: HttpRequest, project_id: str):
    project = project_get(user=request.user, project_id=project_id, operate=True)
    return Status(202, runs.planning_start(project=project))


@router.post("/projects/{project_id}/run", response={202: RunOut})
def start_run(request: HttpRequest, project_id: str):
    project = runs.run_start(project=project_get(user=request.user, project_id=project_id, operate=True))
    return Status(202, {"project_id": project.pk, "slug": project.slug, "status": project.status})


@router.post("/sessions/{session_id}/continue", response={202: SessionOut})
def continue_session(request: HttpRequest, session_id: str, payload: ContinueIn):
    session = session_get(user=request.user, session_id=session_id, operate=True)
    by = request.user.get_username()
    return Status(202, runs.session_continue(session=session, notes=payload.notes, by=by, force=payload.force))


@router.post("/projects/{project_id}/tasks/{task_id}/retry", response=TaskOut)
def retry_task(request: HttpRequest, project_id: str, task_id: str):
    project = project_get(user=request.user, project_id=project_id, operate=True)
    return runs.task_retry(task=task_get(project, task_id))
