"""Pages need a login and show only what the user may see."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/", "/projects/todo-service/", "/api/docs"])
def test_every_page_redirects_anonymous_users_to_login(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_the_login_page_logs_a_user_in(client, owner):
    assert client.get("/login/").status_code == 200

    response = client.post("/login/", {"username": "olivia", "password": "pw-olivia"})

    assert response.status_code == 302 and response["Location"] == "/"


def test_the_projects_page_lists_only_visible_projects(client, planned_project, outsider, owner):
    client.force_login(outsider)
    assert "Todo service" not in client.get("/").text

    client.force_login(owner)
    page = client.get("/").text
    assert "Todo service" in page and "todo-service" in page


def test_the_project_page_shows_epics_tasks_batches_and_critical_path(client, planned_project, owner):
    client.force_login(owner)

    page = client.get("/projects/todo-service/").text

    assert "Batch 1" in page and "Storage" in page and "Lists page" in page
    assert "Critical path (140 min estimated): T1 → T2 → T3 → T4 → T5 → T7 → T8" in page
    assert "htmx" in page


def test_an_htmx_request_gets_only_the_swimlanes_fragment(client, planned_project, owner):
    client.force_login(owner)

    fragment = client.get("/projects/todo-service/?part=swimlanes", headers={"HX-Request": "true"}).text

    assert 'id="swimlanes"' in fragment and "<html" not in fragment and "Progress" not in fragment


def test_another_users_project_is_not_found(client, planned_project, outsider):
    client.force_login(outsider)

    assert client.get("/projects/todo-service/").status_code == 404


def test_a_viewer_sees_the_project_as_read_only(client, planned_project, viewer):
    client.force_login(viewer)

    assert "read only" in client.get("/projects/todo-service/").text


def test_the_projects_page_counts_tasks_without_a_query_per_project(client, planned_project, owner,
                                                                    django_assert_max_num_queries):
    from apps.projects.services import project_create

    for n in range(5):
        project_create(owner=owner, name=f"Extra {n}")
    client.force_login(owner)

    with django_assert_max_num_queries(6):
        page = client.get("/").text

    assert "<td>9</td><td>0</td><td>0</td>" in page
