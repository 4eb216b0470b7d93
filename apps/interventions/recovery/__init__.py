"""Automatic recovery for a paused session: a few safe, narrowly scoped repairs, each recorded as an action.
`actions.py` picks the repair for a blocker and holds the port and package repairs; `dev_service.py` restarts the
project's dev service; `common.py` is what they share. The repairs and their limits are described in
`actions.py`."""

from apps.interventions.recovery.actions import free_port, pip_install, recovery_attempt
from apps.interventions.recovery.dev_service import dev_service_stop, restart_service

__all__ = ["dev_service_stop", "free_port", "pip_install", "recovery_attempt", "restart_service"]
