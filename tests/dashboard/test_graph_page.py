"""The dependency graph page: the mermaid diagram with the critical path highlighted, the batches with task
statuses, the text view with a copy button, the vendored mermaid library; empty and cyclic graphs never fail."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.utils.html import escape

from apps.projects.models import Project, Task, TaskDependency
from apps.projects.selectors import project_graph

pytestmark = pytest.mark.django_db

PAGE = "/projects/todo-service/graph/"
CRITICAL = "T1 → T2 → T3 → T4 → T5 → T7 → T8"
MERMAID_JS = "vendor/mermaid/mermaid.min.js"


def section(page: str, heading_id: str) -> str:
    """The HTML of the card whose heading has this id (the page's sections are cards, one heading each)."""
    start = page.index(f'id="{heading_id}"')
    return page[start:page.index("</section>", start)]


def batches_on(page: str) -> list[list[tuple[str, str]]]:
    """Each listed batch as (key, status) pairs, in page order."""
    parts = section(page, "graph-batches").split('class="batch-label">Batch ')[1:]
    pill = re.compile(r">([^<]+)</code>\s*<span class=\"status status-([a-z_]+)\">")
    return [pill.findall(part) for part in parts]


def close_a_cycle(project: Project) -> None:
    """T1 waits for T3, which already waits for T1 through T2. The services refuse this, so write the row."""
    first, third = (Task.objects.get(project=project, key=key) for key in ("T1", "T3"))
    TaskDependency.objects.create(task=first, depends_on=third)


def test_the_graph_page_highlights_the_critical_path(client, planned_project, owner):
    client.force_login(owner)

    page = client.get(PAGE).text

    source = project_graph(planned_project).to_mermaid(highlight_critical=True)
    assert f'<pre class="mermaid">{escape(source)}</pre>' in page
    assert "classDef critical fill:#fde2e1,stroke:#c0392b" in page
    assert "class n_T1,n_T2,n_T3,n_T4,n_T5,n_T7,n_T8 critical" in page and "linkStyle " in page
    critical = section(page, "graph-critical")
    assert CRITICAL in critical and "(140 min)" in critical
    assert "legend-swatch" in critical and "red outline and pink fill" in critical


def test_the_page_starts_with_its_heading_and_the_project_navigation(client, planned_project, owner):
    client.force_login(owner)

    page = client.get(PAGE).text

    assert "<h1>Todo service — dependency graph</h1>" in page
    assert 'href="/projects/todo-service/graph/" aria-current="page">Graph</a>' in page


def test_the_batches_list_every_task_with_its_status(client, planned_project, owner):
    # A status other than the plan's defaults, so the pills are known to come from each task.
    Task.objects.filter(project=planned_project, key="T1").update(status=Task.Status.RUNNING)
    client.force_login(owner)

    page = client.get(PAGE).text

    listed = batches_on(page)
    assert [[key for key, _ in batch] for batch in listed] == project_graph(planned_project).batches()
    statuses = dict(Task.objects.filter(project=planned_project).values_list("key", "status"))
    assert all(status == statuses[key] for batch in listed for key, status in batch)
    assert ("T1", "running") in listed[0]
    assert "tasks in one batch can run in parallel" in page


def test_the_text_view_is_shown_with_a_labelled_copy_button(client, planned_project, owner):
    client.force_login(owner)

    page = client.get(PAGE).text

    text = section(page, "graph-text")
    assert escape(project_graph(planned_project).to_ascii()) in text
    assert 'aria-label="Copy the text view"' in text and 'data-copy-target="ascii-view"' in text
    assert 'id="ascii-view"' in text and 'role="status"' in text
    script = (settings.BASE_DIR / "static" / "js" / "graph.js").read_text()
    assert "navigator.clipboard.writeText" in script and "selectText" in script


def test_the_mermaid_source_is_offered_as_text(client, planned_project, owner):
    client.force_login(owner)

    page = client.get(PAGE).text

    source = section(page, "graph-source")
    assert "/api/projects/todo-service/dependencies?format=mermaid" in source
    assert escape(project_graph(planned_project).to_mermaid()) in source
    api = client.get("/api/projects/todo-service/dependencies?format=mermaid")
    assert api.status_code == 200 and api.json()["content"].startswith("graph TD")


def test_the_page_loads_the_vendored_mermaid_library_and_no_cdn(client, planned_project, owner):
    client.force_login(owner)

    page = client.get(PAGE).text

    assert f'<script src="/static/{MERMAID_JS}" defer></script>' in page
    assert '<script src="/static/js/graph.js" defer></script>' in page
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"(https?:)?//", page)
    vendored = finders.find(MERMAID_JS)
    assert vendored is not None
    library = Path(vendored).read_text(encoding="utf-8")
    assert len(library) > 1_000_000 and 'globalThis["mermaid"]' in library
    init = (settings.BASE_DIR / "static" / "js" / "graph.js").read_text()
    assert "startOnLoad: true" in init and 'securityLevel: "strict"' in init


def test_a_viewer_sees_the_graph(client, planned_project, viewer):
    client.force_login(viewer)

    assert CRITICAL in client.get(PAGE).text


def test_an_outsider_gets_a_404(client, planned_project, outsider):
    client.force_login(outsider)

    assert client.get(PAGE).status_code == 404


def test_an_anonymous_visitor_is_sent_to_the_login_page(client, planned_project):
    response = client.get(PAGE)

    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_a_project_without_a_plan_shows_the_empty_state(client, project, owner):
    client.force_login(owner)

    response = client.get(PAGE)

    assert response.status_code == 200
    assert "No tasks yet" in response.text and 'class="empty"' in response.text
    assert MERMAID_JS not in response.text and "Batch 1" not in response.text


def test_a_cyclic_graph_shows_the_cycle_and_no_critical_path(client, planned_project, owner):
    close_a_cycle(planned_project)
    client.force_login(owner)

    response = client.get(PAGE)

    assert response.status_code == 200
    page = response.text
    assert "Dependency cycle between T1, T2, T3" in page
    assert "No critical path" in section(page, "graph-critical") and CRITICAL not in page
    assert '<pre class="mermaid">graph TD' in page and "classDef critical" not in page
    unscheduled = section(page, "graph-batches").split("Not scheduled", 1)[1]
    assert all(f">{key}</code>" in unscheduled for key in ("T1", "T2", "T3"))


def test_the_page_needs_no_query_per_task(client, planned_project, owner, django_assert_max_num_queries):
    client.force_login(owner)

    with django_assert_max_num_queries(10):
        assert client.get(PAGE).status_code == 200
