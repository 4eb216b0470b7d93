"""The expertise admin: read-only files with their history, validated or scanned through the services."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from apps.learning.services import expertise_file
from tests.learning.test_costs_api import _repo_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(staff):
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="learning"))
    return staff


def test_the_admin_shows_expertise_read_only_and_scans_through_the_service(client, admin_user, project):
    _repo_with(project, {"app/models.py": "x", "README.md": "y"})
    file = expertise_file(project=project, domain="database")
    client.force_login(admin_user)

    response = client.post("/admin/learning/expertisefile/", {"action": "improve", "_selected_action": [file.pk]},
                           follow=True)

    assert "scanned 2 files: added 1" in response.text
    file.refresh_from_db()
    assert file.version == 1 and file.updates.get().change_type == "improved"
    change = client.get(f"/admin/learning/expertisefile/{file.pk}/change/").text
    assert "app/models.py" in change and 'name="content"' not in change  # shown, never edited here
    assert client.get(f"/admin/learning/expertiseupdate/{file.updates.get().pk}/change/").status_code == 200
