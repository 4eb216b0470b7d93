"""The costs page shows what a project spent, its budget and its forecast, drawn as server-side SVG that reads
without JavaScript; the chart helpers scale by value and escape whatever text the database gives them."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest

from apps.agents.models import AgentSession
from apps.agents.pricing import TokenUsage
from apps.agents.services import call_record, session_create, session_transition
from apps.dashboard import charts
from apps.interventions.services import pause_open
from apps.learning.costs import cost_forecast, costs_summary, forecast_line
from apps.projects.models import Project

pytestmark = pytest.mark.django_db

URL = "/projects/todo-service/costs/"
HAIKU, SONNET = "claude-haiku-5-5", "claude-sonnet-5-5"


def _session(project: Project, *, model: str, task_type: str = "general") -> AgentSession:
    task = project.tasks.get(key="T1")
    return session_create(project=project, kind="coding", task=task, model=model, provider="replay",
                          task_type=task_type)


def _call(session: AgentSession, *, output_tokens: int, simulated: bool = False) -> None:
    call_record(session=session, turn=1, model=session.model, usage=TokenUsage(input_tokens=1000,
                output_tokens=output_tokens), latency_ms=5, simulated=simulated)


@pytest.fixture
def spent(planned_project: Project) -> Project:
    """Real cost rows through the real service: two Haiku calls (one replayed) and one Sonnet call."""
    haiku = _session(planned_project, model=HAIKU)
    _call(haiku, output_tokens=80_000)
    _call(haiku, output_tokens=20_000, simulated=True)
    _call(_session(planned_project, model=SONNET, task_type="database"), output_tokens=1_000)
    return planned_project


def _bar_widths(svg: str) -> list[float]:
    return [float(w) for w in re.findall(r'class="bar-value" x="0" y="[\d.]+" width="([\d.]+)"', svg)]


# ------------------------------------------------------------------------------------------------ the page


def test_the_page_shows_the_total_each_model_and_the_forecast(client, owner, spent):
    client.force_login(owner)
    summary, forecast = costs_summary(project=spent), cost_forecast(project=spent)

    page = client.get(URL).text

    assert summary.total_usd > 0 and f'class="costs-total">{charts.money(summary.total_usd)}<' in page
    assert f"Replayed (offline, not charged)</dt><dd>{charts.money(summary.simulated_usd)}" in page
    assert f"<h1>{spent.name} — costs</h1>" in page and 'aria-current="page">Costs' in page
    for row in summary.by_model:
        assert f">{row['model']}</text>" in page
    assert page.count('class="bar-value"') == len(summary.by_model) + len(summary.by_task_type)
    assert 'role="img"' in page and "<title>Spend by model: " in page
    assert forecast_line(forecast) in page and "Show the numbers" in page
    assert "No budget set" in page and "costs.css" in page


def test_the_page_shows_the_budget_used_and_the_budget_line(client, owner, spent):
    spent.budget_usd = Decimal("1.00")
    spent.save()
    client.force_login(owner)
    used = costs_summary(project=spent).budget.used

    page = client.get(URL).text

    assert f"<strong>{charts.percent(used)} used</strong>" in page and "left." in page
    assert 'class="chart chart-meter"' in page and 'class="budget-line"' in page
    assert "budget $1.00" in page and "The likely case" in page


def test_a_project_over_budget_says_so_in_words_not_only_in_red(client, owner, spent):
    spent.budget_usd = Decimal("0.01")
    spent.save()
    client.force_login(owner)

    page = client.get(URL).text

    assert "Over budget:" in page and charts.OVER in page and "over.</p>" in page


def test_the_sessions_table_links_each_session(client, owner, spent):
    client.force_login(owner)
    dearest = costs_summary(project=spent).by_session[0]

    page = client.get(URL).text

    assert f'href="/sessions/{dearest["session_id"]}/">#{dearest["session_id"]}</a>' in page


def test_a_budget_pause_shows_a_notice_with_the_way_to_approve(client, owner, spent):
    session = _session(spent, model=HAIKU)
    session = session_transition(session=session, status=AgentSession.Status.RUNNING, lease_owner="test")
    session = session_transition(session=session, status=AgentSession.Status.PAUSED, stop_reason="budget",
                                 owner="test")
    pause_open(session=session, pause_type="budget", reason="approve more budget to go on")
    client.force_login(owner)

    page = client.get(URL).text

    assert "The run waits for budget." in page and 'href="/interventions/?project=todo-service"' in page


def test_a_task_type_from_the_database_is_escaped_in_the_chart(client, owner, planned_project):
    _call(_session(planned_project, model=HAIKU, task_type="<script>x"), output_tokens=100)
    client.force_login(owner)

    page = client.get(URL).text

    assert "<script>x" not in page and "&lt;script&gt;x</text>" in page


def test_a_project_without_calls_gets_a_friendly_empty_state(client, owner, project):
    client.force_login(owner)

    response = client.get(URL)

    assert response.status_code == 200
    assert "No spend yet" in response.text and "Forecast" in response.text and "chart-bars" not in response.text


def test_another_users_project_is_not_found(client, outsider, spent):
    client.force_login(outsider)

    assert client.get(URL).status_code == 404


def test_an_anonymous_visitor_is_sent_to_log_in(client, spent):
    response = client.get(URL)

    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


# ------------------------------------------------------------------------------------------------ the chart helpers


def test_bar_widths_are_proportional_to_the_values():
    svg = charts.bar_chart([charts.Bar("a", Decimal("2"), "$2.00"), charts.Bar("b", Decimal("1"), "$1.00"),
                            charts.Bar("c", Decimal("0.5"), "$0.5000")], title="Spend")

    assert _bar_widths(svg) == [charts.BAR_WIDTH, charts.BAR_WIDTH / 2, charts.BAR_WIDTH / 4]
    assert 'viewBox="0 0 600 132"' in svg and 'width="100%"' in svg and 'role="img"' in svg
    assert 'aria-label="Spend: a $2.00, b $1.00, c $0.5000"' in svg


def test_zero_values_draw_empty_bars_and_no_bars_draw_an_empty_chart():
    assert _bar_widths(charts.bar_chart([charts.Bar("a", 0, "$0.00"), charts.Bar("b", 0, "$0.00")],
                                        title="Spend")) == [0.0, 0.0]
    empty = charts.bar_chart([], title="Spend")
    assert _bar_widths(empty) == [] and "<title>Spend: none</title>" in empty


def test_a_hostile_label_is_escaped_everywhere_it_appears():
    svg = charts.bar_chart([charts.Bar('<script>alert("x")</script>', 1, "$1.00")], title="Spend")

    assert "<script>" not in svg and svg.count("&lt;script&gt;") == 4  # aria-label, title, row title, text


def test_long_labels_are_cut_in_the_drawing_but_whole_in_its_title():
    label = "m" * 50

    svg = charts.bar_chart([charts.Bar(label, 1, "$1.00")], title="Spend")

    assert f"<title>{label}: $1.00</title>" in svg and f">{'m' * 35}…</text>" in svg


def test_a_single_day_is_one_centred_point_with_its_date():
    svg = charts.time_chart([{"day": date(2026, 11, 2), "cost_usd": Decimal("0.5"), "calls": 3}])

    assert svg.count("<circle") == 1 and 'cx="360.0"' in svg and "<polyline" not in svg
    assert ">2026-11-02</text>" in svg and "on 2026-11-02: $0.5000 in all; no budget set" in svg


def test_the_time_chart_is_cumulative_with_first_last_day_max_and_budget():
    days = [{"day": date(2026, 11, 1), "cost_usd": Decimal("1"), "calls": 1},
            {"day": date(2026, 11, 3), "cost_usd": Decimal("3"), "calls": 2}]

    svg = charts.time_chart(days, budget=Decimal("8"))

    assert ">2026-11-01</text>" in svg and ">2026-11-03</text>" in svg and ">max $8.00</text>" in svg
    assert "stroke-dasharray" in svg and ">budget $8.00</text>" in svg
    assert "$3.00 that day, $4.00 so far" in svg  # the running total, not the day's own spend
    # $4 of an $8 scale is half the plot's height; the last day is at the right edge
    assert f'cx="{charts.PLOT_RIGHT:.1f}" cy="{(charts.PLOT_TOP + charts.PLOT_BOTTOM) / 2:.1f}"' in svg


def test_the_time_chart_without_days_says_so():
    svg = charts.time_chart([])

    assert "no calls yet" in svg and "<circle" not in svg


def test_the_budget_meter_fills_by_share_and_marks_an_overrun():
    under = charts.budget_meter(spent=Decimal("25"), budget=Decimal("100"))
    over = charts.budget_meter(spent=Decimal("150"), budget=Decimal("100"))

    assert 'class="meter-value" x="0" y="0" width="150.0"' in under and charts.OK in under
    assert "25% used, $75.00 left" in under
    assert f'width="{charts.METER_WIDTH:.1f}"' in over and charts.OVER in over and 'x1="400.0"' in over
    assert "150% used, over by $50.00" in over


def test_money_and_percent_read_as_people_write_them():
    assert charts.money(Decimal("1234.5")) == "$1,234.50" and charts.money(Decimal("0.0639")) == "$0.0639"
    assert charts.money(None) == "$0.00" and charts.money(Decimal("0.0000")) == "$0.00"
    assert charts.percent(0.615) == "61.5%" and charts.percent(1) == "100%"
    assert charts.budget_fraction(Decimal("1"), Decimal("0")) == 1.0
