"""Who plays the model: Claude through the official SDK (`anthropic.py`), or the offline replay model
(`replay.py`); what they share is in `base.py`, how one is chosen in `choice.py`."""

from apps.agents.providers.base import REPLAY_LABEL, ModelReply, ModelRequest, Provider, account_fingerprint
from apps.agents.providers.choice import (
    deprecated_models,
    model_for_tier,
    provider_account,
    provider_for,
    provider_name,
    provider_notice,
    replay_script_path,
)

__all__ = [
    "REPLAY_LABEL",
    "ModelReply",
    "ModelRequest",
    "Provider",
    "account_fingerprint",
    "deprecated_models",
    "model_for_tier",
    "provider_account",
    "provider_for",
    "provider_name",
    "provider_notice",
    "replay_script_path",
]
