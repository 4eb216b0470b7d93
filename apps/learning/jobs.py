"""django-q2 entry points of the learning app (thin: look the row up, call the service)."""

from __future__ import annotations

from apps.agents.models import AgentSession
from apps.learning.lessons import learn_from_session


def learn(session_id: int) -> None:
    """After a coding session settled: fold what it did into its domain's expertise."""
    session = AgentSession.objects.select_related("project", "task").filter(pk=session_id).first()
    if session is not None and session.task_id is not None:
        learn_from_session(session=session)
