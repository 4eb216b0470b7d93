"""Charts as inline SVG, drawn on the server from numbers only: they read without JavaScript and print.

Every chart is one `<svg role="img">` with a `<title>` and an `aria-label` that say what it shows; the page pairs
each with a table of the exact figures. Text that comes from the database (model names, task types) only ever
enters the markup through `format_html`, so it is escaped; the `SafeString`s returned here are markup built in
this module. Charts scale with `viewBox` and `width="100%"`; the page's stylesheet enlarges their text on phones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

Number = Decimal | float | int

BAR_WIDTH = 600  # bar charts: the user-space width every bar is scaled into
BAR_ROW = 44  # one row: its label line, then its bar
BAR_HEIGHT = 14
LABEL_CHARS = 36  # longer labels are cut in the drawing (the table beside it has them whole)

TIME_WIDTH, TIME_HEIGHT = 720, 240
PLOT_TOP, PLOT_BOTTOM = 36, 196  # the plot's vertical extent; the labels sit above and below it
PLOT_LEFT, PLOT_RIGHT = 4, 716  # a small inset so the first and last points are not cut in half

METER_WIDTH, METER_HEIGHT = 600, 24

ACCENT, OK, OVER, BUDGET_LINE, TRACK, INK = "#2459c4", "#2f9e55", "#b42318", "#8a5a00", "#e7eaef", "#1d232b"


@dataclass(frozen=True)
class Bar:
    """One bar: what it is, how long it is, and the value as the page prints it."""

    label: str
    value: Number
    shown: str


# ------------------------------------------------------------------------------------------------ formatting


def money(value: Number | None) -> str:
    """Dollars as the page prints them: cents from $1 up (and for nothing at all), below that four places, since a
    call can cost $0.0012."""
    amount = Decimal(str(value or 0))
    return f"${amount:,.2f}" if abs(amount) >= 1 or not amount else f"${amount:.4f}"


def percent(fraction: float) -> str:
    """0.615 → "61.5%"; whole percentages lose their ".0"."""
    text = f"{fraction * 100:.1f}"
    return f"{text.removesuffix('.0')}%"


def scale(value: Number, top: Number, length: float) -> float:
    """`value`'s share of `length` when `top` fills it; nothing to scale against (top 0) gives 0, not an error."""
    if not top or float(top) <= 0:
        return 0.0
    return max(0.0, min(length, float(value) / float(top) * length))


def _n(value: float) -> str:
    """A coordinate with one decimal: enough for the eye, short markup."""
    return f"{value:.1f}"


def _cut(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _svg(*, kind: str, width: int, height: int, summary: str, body: SafeString) -> SafeString:
    """The frame every chart shares: scales to its container, announced by screen readers as one image."""
    return format_html(
        '<svg class="chart chart-{}" role="img" aria-label="{}" viewBox="0 0 {} {}" width="100%" '
        'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}</svg>',
        kind, summary, width, height, summary, body)


# ------------------------------------------------------------------------------------------------ horizontal bars


def bar_chart(bars: Sequence[Bar], *, title: str) -> SafeString:
    """Horizontal bars, longest = the largest value; each row names its bar and prints its value."""
    top = max((float(bar.value) for bar in bars), default=0.0)
    rows = format_html_join("", "{}", ((_bar_row(bar, index, top),) for index, bar in enumerate(bars)))
    summary = (f"{title}: " + ", ".join(f"{bar.label} {bar.shown}" for bar in bars)) if bars else f"{title}: none"
    return _svg(kind="bars", width=BAR_WIDTH, height=max(1, len(bars)) * BAR_ROW, summary=summary, body=rows)


def _bar_row(bar: Bar, index: int, top: float) -> SafeString:
    y = index * BAR_ROW
    return format_html(
        '<g><title>{}: {}</title>'
        '<text x="0" y="{}" font-size="14" fill="{}">{}</text>'
        '<text x="{}" y="{}" font-size="14" fill="{}" text-anchor="end">{}</text>'
        '<rect x="0" y="{}" width="{}" height="{}" rx="3" fill="{}"/>'
        '<rect class="bar-value" x="0" y="{}" width="{}" height="{}" rx="3" fill="{}"/></g>',
        bar.label, bar.shown, y + 18, INK, _cut(bar.label), BAR_WIDTH, y + 18, INK, bar.shown,
        y + 24, BAR_WIDTH, BAR_HEIGHT, TRACK, y + 24, _n(scale(bar.value, top, BAR_WIDTH)), BAR_HEIGHT, ACCENT)


# ------------------------------------------------------------------------------------------------ spend over time


def cumulative(days: Sequence[dict]) -> list[dict]:
    """`by_day` rows with the running total added: what had been spent by the end of each day."""
    total, rows = Decimal(0), []
    for row in days:
        total += row["cost_usd"]
        rows.append({**row, "total_usd": total})
    return rows


def time_chart(days: Sequence[dict], *, budget: Decimal | None = None) -> SafeString:
    """Cumulative spend per day as a line over an area, the budget as a dashed line, labelled axes."""
    rows = cumulative(days)
    spent = rows[-1]["total_usd"] if rows else Decimal(0)
    top = max(spent, budget or Decimal(0)) or Decimal(1)  # an all-zero chart still needs a scale
    points = [(_day_x(row["day"], rows), _value_y(row["total_usd"], top)) for row in rows]
    body = format_html("{}{}{}{}{}", _grid(top), _area(points), _budget_line(budget, top),
                       _dots(rows, points), _day_labels(rows))
    return _svg(kind="time", width=TIME_WIDTH, height=TIME_HEIGHT, summary=_time_summary(rows, budget), body=body)


def _time_summary(rows: Sequence[dict], budget: Decimal | None) -> str:
    if not rows:
        return "Spend over time: no calls yet"
    span = (f"on {rows[0]['day']:%Y-%m-%d}" if len(rows) == 1
            else f"from {rows[0]['day']:%Y-%m-%d} to {rows[-1]['day']:%Y-%m-%d}")
    text = f"Cumulative spend {span}: {money(rows[-1]['total_usd'])} in all"
    return text + (f"; budget {money(budget)}" if budget is not None else "; no budget set")


def _day_x(day: date, rows: Sequence[dict]) -> float:
    """Days are placed by date, not by index: a quiet week shows as a flat stretch, not as nothing."""
    span = (rows[-1]["day"] - rows[0]["day"]).days
    if span <= 0:  # one day: in the middle, where a lone point reads as "all of it happened then"
        return (PLOT_LEFT + PLOT_RIGHT) / 2
    return PLOT_LEFT + (day - rows[0]["day"]).days / span * (PLOT_RIGHT - PLOT_LEFT)


def _value_y(value: Number, top: Number) -> float:
    return PLOT_BOTTOM - scale(value, top, PLOT_BOTTOM - PLOT_TOP)


def _grid(top: Decimal) -> SafeString:
    """The baseline at $0 and a faint line at the top of the scale, each labelled with its value."""
    return format_html(
        '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="{}"/><line x1="0" y1="{}" x2="{}" y2="{}" stroke="{}"/>'
        '<text x="0" y="{}" font-size="14" fill="{}">max {}</text>',
        PLOT_BOTTOM, TIME_WIDTH, PLOT_BOTTOM, INK, PLOT_TOP, TIME_WIDTH, PLOT_TOP, TRACK,
        PLOT_TOP - 10, INK, money(top))


def _area(points: Sequence[tuple[float, float]]) -> SafeString:
    if len(points) < 2:  # a single point has no line: its dot says it all
        return SafeString("")
    line = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
    area = f"{_n(points[0][0])},{PLOT_BOTTOM} {line} {_n(points[-1][0])},{PLOT_BOTTOM}"
    return format_html('<polygon points="{}" fill="{}" fill-opacity="0.12"/>'
                       '<polyline points="{}" fill="none" stroke="{}" stroke-width="2.5"/>',
                       area, ACCENT, line, ACCENT)


def _budget_line(budget: Decimal | None, top: Decimal) -> SafeString:
    if budget is None:
        return SafeString("")
    y = _value_y(budget, top)
    return format_html(
        '<line class="budget-line" x1="0" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2" '
        'stroke-dasharray="8 6"/><text x="{}" y="{}" font-size="14" fill="{}" text-anchor="end">budget {}</text>',
        _n(y), TIME_WIDTH, _n(y), BUDGET_LINE, TIME_WIDTH, _n(max(y - 6, 14)), BUDGET_LINE, money(budget))


def _dots(rows: Sequence[dict], points: Sequence[tuple[float, float]]) -> SafeString:
    """A dot per day with calls; hovering one names the day and its spend (the table has the same)."""
    return format_html_join(
        "", '<circle cx="{}" cy="{}" r="4" fill="{}"><title>{}: {} that day, {} so far</title></circle>',
        ((_n(x), _n(y), ACCENT, f"{row['day']:%Y-%m-%d}", money(row["cost_usd"]), money(row["total_usd"]))
         for row, (x, y) in zip(rows, points, strict=True)))


def _day_labels(rows: Sequence[dict]) -> SafeString:
    """The first and the last day under the axis (one day: once, centred)."""
    y = PLOT_BOTTOM + 30
    if not rows:
        return format_html('<text x="{}" y="{}" font-size="14" fill="{}" text-anchor="middle">no calls yet</text>',
                           TIME_WIDTH / 2, y, INK)
    if len(rows) == 1:
        return format_html('<text x="{}" y="{}" font-size="14" fill="{}" text-anchor="middle">{}</text>',
                           _n(_day_x(rows[0]["day"], rows)), y, INK, f"{rows[0]['day']:%Y-%m-%d}")
    return format_html('<text x="0" y="{}" font-size="14" fill="{}">{}</text>'
                       '<text x="{}" y="{}" font-size="14" fill="{}" text-anchor="end">{}</text>',
                       y, INK, f"{rows[0]['day']:%Y-%m-%d}", TIME_WIDTH, y, INK, f"{rows[-1]['day']:%Y-%m-%d}")


# ------------------------------------------------------------------------------------------------ budget meter


def budget_fraction(spent: Decimal, budget: Decimal) -> float:
    """How much of the budget is used; a zero budget is used up at once (as `costs_summary` counts it)."""
    return float(spent / budget) if budget > 0 else 1.0


def budget_meter(*, spent: Decimal, budget: Decimal) -> SafeString:
    """Spent against budget. Under it the track is the budget; over it the track is what was spent, with a mark
    where the budget ran out, so the overrun shows as the red past the mark."""
    used = budget_fraction(spent, budget)
    over = spent > budget
    fill = METER_WIDTH if over else scale(spent, budget, METER_WIDTH)
    summary = (f"Budget: {money(spent)} spent of {money(budget)}, {percent(used)} used"
               + (f", over by {money(spent - budget)}" if over else f", {money(budget - spent)} left"))
    body = format_html(
        '<rect x="0" y="0" width="{}" height="{}" rx="6" fill="{}"/>'
        '<rect class="meter-value" x="0" y="0" width="{}" height="{}" rx="6" fill="{}"/>{}',
        METER_WIDTH, METER_HEIGHT, TRACK, _n(fill), METER_HEIGHT, OVER if over else OK,
        _budget_mark(spent, budget) if over else SafeString(""))
    return _svg(kind="meter", width=METER_WIDTH, height=METER_HEIGHT, summary=summary, body=body)


def _budget_mark(spent: Decimal, budget: Decimal) -> SafeString:
    x = _n(scale(budget, spent, METER_WIDTH))
    return format_html('<line x1="{}" y1="0" x2="{}" y2="{}" stroke="#fff" stroke-width="3"/>',
                       x, x, METER_HEIGHT)
