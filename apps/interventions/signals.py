"""What interventions tell the rest of YokeFlow without importing it: orchestration (the composition root)
listens and continues sessions or restarts scheduling. Receivers run inside the sender's transaction; one that
raises rolls the resolution back, so a pause is never marked resolved without its continuation queued."""

from __future__ import annotations

from django.dispatch import Signal

# sender=PausedSession; kwargs: pause, by, notes. Continue the paused session from its checkpoint.
pause_resolved = Signal()

# sender=ProviderAccount; kwargs: account. A hold ended: start tasks again on projects that waited for it.
hold_released = Signal()
