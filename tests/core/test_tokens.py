"""API tokens are stored only as digests, authenticate their user, and stop working when revoked."""

from __future__ import annotations

import pytest

from apps.core.errors import NotFoundError
from apps.core.models import ApiToken
from apps.core.tokens import token_authenticate, token_create, token_revoke

pytestmark = pytest.mark.django_db


def test_a_token_authenticates_its_user_and_is_stored_hashed(owner):
    token, raw = token_create(username="olivia", name="laptop")

    assert token_authenticate(raw) == owner
    assert raw not in {token.key_hash, token.prefix}
    assert not ApiToken.objects.filter(key_hash=raw).exists()
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_revoked_or_inactive_users_token_fails(owner):
    token, raw = token_create(username="olivia")
    token_revoke(token=token)
    assert token_authenticate(raw) is None

    _, raw2 = token_create(username="olivia")
    owner.is_active = False
    owner.save()
    assert token_authenticate(raw2) is None


def test_a_token_for_an_unknown_user_is_refused():
    with pytest.raises(NotFoundError, match="no user named 'ghost'"):
        token_create(username="ghost")
