"""The tests' webhook receivers listen on loopback, as an operator's LAN receiver would: allowed here the way an
operator allows one (WEBHOOK_ALLOWED_NETS). tests/interventions/test_webhooks.py checks the default refuses them."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _loopback_receivers(settings):
    settings.WEBHOOK_ALLOWED_NETS = ["127.0.0.0/8"]
