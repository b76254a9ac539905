"""The timeline plot: one PNG that shows what a run did to the load and to the workload, at a glance.

Three panels share one time axis (seconds from the start of the fault schedule): requests answered OK and
failed per second with every failed request as a red tick, latency percentiles per second, and ready
replicas per zone replayed from the pod records, with container exits marked. When the journal has ``hpa``
records, a fourth, smaller panel shows the HPA's desired replicas (and its maxReplicas) against the ready
replicas, as step lines. Fault windows are shaded on every panel and named once at the top. The data is
replayed in :mod:`resilience_tests.reporting.plot_data`.

matplotlib is imported inside :func:`timeline_png` only, and only through :class:`~matplotlib.figure.Figure`
(no pyplot, no global backend), so importing this module costs nothing and is safe in any thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from resilience_tests.experiment.journal import Journal
from resilience_tests.reporting.plot_data import (
    UNKNOWN_ZONE,
    Exit,
    HpaSeries,
    LoadSeries,
    ZoneReplay,
    hpa_series,
    load_series,
    replay_zones,
    time_origin,
    window_end,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["hpa_series", "load_series", "replay_zones", "time_origin", "timeline_png"]

X_LABEL = "seconds from the start of the fault schedule (at: 0)"
WIDTH_IN, HEIGHT_IN, DPI = 14.0, 10.0, 100
LOG_LATENCY_RATIO = 30.0
"""Latency goes on a log scale when its largest per-second percentile is this many times its smallest."""
MAX_EXIT_LABELS = 40
"""Container exits beyond this many are still marked, but not annotated with their code."""

OK_COLOUR, FAIL_COLOUR = "#2a7d2e", "#d62728"
PERCENTILE_COLOURS = {50: "#1f77b4", 95: "#ff7f0e", 99: "#9467bd"}
WINDOW_COLOUR, BROKEN_WINDOW_COLOUR = "#f2b33d", "#d62728"
ZONE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
DESIRED_COLOUR, READY_COLOUR, LIMIT_COLOUR = "#d95f02", "#333333", "#999999"
OUTCOME_COLOURS = {"passed": "#2a7d2e", "planned": "#555555"}


# ---------------------------------------------------------------- drawing

def timeline_png(journal: Journal, path: Path) -> Path:
    """Draw the run's timeline to ``path`` (PNG, ~1400x1000 px) and return it.

    Panels, sharing the time axis: requests answered OK and failed per second (red ticks: failed requests);
    latency p50/p95/p99 per second; ready replicas per zone with container exits and their codes; with ``hpa``
    records, the HPA's desired replicas and maxReplicas against the ready replicas. Fault windows are shaded
    on each panel and named at the top; a window whose revert never ran lasts to the end of the run. Panels
    without data say so instead of drawing nothing.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    origin = time_origin(journal)
    load = load_series(journal, origin)
    zones = replay_zones(journal, origin)
    hpa = hpa_series(journal, origin, zones.total)
    lo, hi = _x_range(journal, origin, load, zones)

    with matplotlib.rc_context({"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 10,
                                "ytick.labelsize": 10, "legend.fontsize": 10, "axes.spines.top": False,
                                "axes.spines.right": False}):
        fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        ratios = (1.1, 1.0, 1.1, 0.8) if hpa.desired else (1.1, 1.0, 1.1)
        panels = list(fig.subplots(len(ratios), 1, sharex=True, height_ratios=ratios))
        throughput, latency, replicas = panels[:3]
        for ax in panels:
            ax.grid(True, color="#dddddd", linewidth=0.8)
            ax.set_axisbelow(True)
            _shade_windows(ax, journal, hi, origin)
        rows = _label_windows(throughput, journal, lo, hi, origin)
        _draw_throughput(throughput, journal, load, title_pad=6.0 + 17.0 * rows)
        _draw_latency(latency, journal, load)
        _draw_replicas(replicas, journal, zones, hi)
        if hpa.desired:
            _draw_hpa(panels[3], hpa, hi)
        panels[-1].set_xlim(lo, hi)
        panels[-1].set_xlabel(X_LABEL)
        _title(fig, journal)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=DPI)
    return path


def _x_range(journal: Journal, origin: float, load: LoadSeries, zones: ZoneReplay) -> tuple[float, float]:
    """The span shown: the run, widened to every sample, record and window; at least one second long."""
    points = [0.0]
    if journal.started:
        points.append(journal.started - origin)
    if journal.ended:
        points.append(journal.ended - origin)
    if load.x:
        points += [load.x[0], load.x[-1] + 1]
    points += [x for x, _ in zones.total[:1] + zones.total[-1:]]
    for window in journal.windows:
        points.append(window.start - origin)
        if window.end is not None:
            points.append(window.end - origin)
    lo, hi = min(points), max(points)
    pad = max(1.0, (hi - lo) * 0.01)
    return lo - pad, hi + pad


def _shade_windows(ax: Axes, journal: Journal, hi: float, origin: float) -> None:
    for window in journal.windows:
        broken = window.end is None or bool(window.error)
        colour = BROKEN_WINDOW_COLOUR if broken else WINDOW_COLOUR
        start, end = window.start - origin, window_end(window, journal, hi, origin)
        ax.axvspan(start, max(end, start), color=colour, alpha=0.12 if broken else 0.22, linewidth=0, zorder=0)
        ax.axvline(start, color=colour, linewidth=1.2, alpha=0.9, zorder=1)
        if window.end is not None:
            ax.axvline(end, color=colour, linewidth=1.2, alpha=0.9, linestyle="--", zorder=1)


def _label_windows(ax: Axes, journal: Journal, lo: float, hi: float, origin: float) -> int:
    """Name each window once, above the top panel; labels that would overlap go on the next row up.
    Returns the number of rows used."""
    span_px = WIDTH_IN * DPI * 0.82
    char_px = 7.5
    rows: list[float] = []  # per row: the x (data) where its last label ends
    for window in sorted(journal.windows, key=lambda w: w.start):
        text = window.label
        if window.end is None:
            text += " (never reverted)"
        elif window.error:
            text += " (revert failed)"
        else:
            text += f" ({_seconds(window.end - window.start)})"
        x = window.start - origin
        width = (len(text) * char_px + 12) * (hi - lo) / span_px
        row = next((i for i, end in enumerate(rows) if end <= x), len(rows))
        if row == len(rows):
            rows.append(x + width)
        else:
            rows[row] = x + width
        broken = window.end is None or bool(window.error)
        ax.annotate(text, xy=(x, 1.0), xycoords=ax.get_xaxis_transform(), xytext=(3, 4 + 16 * row),
                    textcoords="offset points", ha="left", va="bottom", fontsize=10.5, fontweight="bold",
                    color="#b22222" if broken else "#7a5200", annotation_clip=False)
    return len(rows)


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=13, color="#666666")
    ax.set_yticks([])


def _no_load_note(ax: Axes, journal: Journal) -> bool:
    """Put a note on an empty load panel; True when there is nothing to draw."""
    if journal.load is None:
        _note(ax, "no load in this experiment")
        return True
    if not journal.load.samples:
        _note(ax, "the load recorded no samples" + (f" ({journal.load.problem})" if journal.load.problem else ""))
        return True
    return False


def _steps(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    """Per-second values as post-steps that also cover the last second."""
    return [*x, x[-1] + 1], [*y, y[-1]]


def _draw_throughput(ax: Axes, journal: Journal, load: LoadSeries, *, title_pad: float) -> None:
    ax.set_ylabel("requests / s")
    ax.set_title("load: requests per second", loc="left", pad=title_pad)
    if _no_load_note(ax, journal):
        return
    x, ok = _steps(load.x, load.ok)
    _, failures = _steps(load.x, load.failures)
    ax.plot(x, ok, drawstyle="steps-post", color=OK_COLOUR, linewidth=1.8, label="answered OK")
    ax.fill_between(x, failures, step="post", color=FAIL_COLOUR, alpha=0.35, linewidth=0)
    ax.plot(x, failures, drawstyle="steps-post", color=FAIL_COLOUR, linewidth=1.4, label="failed")
    top = max(1.0, max([v for v in ok + failures if not math.isnan(v)], default=0.0))
    if load.failed_at:  # a rug in its own strip below zero, so the failure steps never hide it
        ax.plot(load.failed_at, [-0.07 * top] * len(load.failed_at), linestyle="none", marker="|", markersize=9,
                markeredgewidth=1.0, color=FAIL_COLOUR, label="a failed request")
        ax.axhline(0, color="#999999", linewidth=0.8)
    ax.set_ylim(-0.13 * top if load.failed_at else 0, top * 1.12)
    total = sum(v for v in load.ok if not math.isnan(v)) + sum(v for v in load.failures if not math.isnan(v))
    failed = sum(v for v in load.failures if not math.isnan(v))
    share = f" ({failed / total:.2%})" if total else ""
    ax.set_title(f"load: requests per second — {total:,.0f} sent, {failed:,.0f} failed{share}", loc="left",
                 pad=title_pad)
    _legend(ax)


def _draw_latency(ax: Axes, journal: Journal, load: LoadSeries) -> None:
    ax.set_ylabel("latency (ms)")
    ax.set_title("latency per second (every answer, failures included)", loc="left")
    if _no_load_note(ax, journal):
        return
    values = [v for series in load.latency.values() for v in series if not math.isnan(v)]
    if not values:
        _note(ax, "no answered requests")
        return
    for p, series in load.latency.items():
        x, y = _steps(load.x, series)
        ax.plot(x, y, drawstyle="steps-post", color=PERCENTILE_COLOURS[p], linewidth=1.5, label=f"p{p}")
    low, high = max(min(values), 0.5), max(values)
    if high / low >= LOG_LATENCY_RATIO:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_yscale("log")
        ax.set_ylim(low / 1.5, high * 2)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("latency (ms, log scale)")
    else:
        ax.set_ylim(0, high * 1.15)
    _legend(ax)


def _draw_replicas(ax: Axes, journal: Journal, zones: ZoneReplay, hi: float) -> None:
    ax.set_ylabel("ready replicas")
    ax.set_title("ready replicas per zone (from the pod records)", loc="left")
    if not zones.total:
        _note(ax, "no pod records")
        return
    colours = _zone_colours(zones.steps)
    order = sorted(zones.steps, key=_zone_order)
    for index, zone in enumerate(order):
        xs, ys = _extend(zones.steps[zone], hi)
        name = "zone unknown" if zone == UNKNOWN_ZONE else zone
        # the first zone is drawn widest, the next ones thinner on top: lines at the same count stay visible
        width = 2.0 + 1.8 * (len(order) - 1 - index) if len(order) <= 4 else 2.2
        ax.plot(xs, ys, drawstyle="steps-post", color=colours[zone], linewidth=width, label=name, zorder=2 + index,
                solid_joinstyle="miter")
    if len(zones.steps) > 1:
        xs, ys = _extend(zones.total, hi)
        ax.plot(xs, ys, drawstyle="steps-post", color="#333333", linewidth=1.3, linestyle=":", label="all zones",
                zorder=10)
    top = max(n for _, n in zones.total)
    if zones.exits:
        ax.scatter([e.x for e in zones.exits], [e.ready_after for e in zones.exits], marker="X", s=90,
                   c=[colours.get(e.zone, "#444444") for e in zones.exits], edgecolors="black", linewidths=0.8,
                   zorder=11)
        ax.plot([], [], linestyle="none", marker="X", markersize=9, color="#888888", markeredgecolor="black",
                label="container exited (code)")
        groups = _exit_groups(zones.exits)
        for index, ((_, zone, code), group) in enumerate(list(groups.items())[:MAX_EXIT_LABELS]):
            first = group[0]
            text = f"exit {code} (x{len(group)})" if len(group) > 1 else f"exit {code}"
            ax.annotate(text, xy=(first.x, first.ready_after), xytext=(6, 5 + 11 * (index % 2)),
                        textcoords="offset points", fontsize=10, color=colours.get(zone, "#444444"),
                        fontweight="bold", zorder=12)
    ax.set_ylim(-0.3, max(1, top) * 1.15 + 0.5)
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(ax)


def _draw_hpa(ax: Axes, hpa: HpaSeries, hi: float) -> None:
    """The HPA's desired replicas (what it asked for) and maxReplicas against the ready replicas (what served)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_ylabel("replicas")
    ax.set_title(f"autoscaler: HPA {hpa.name} desired vs ready replicas (from the hpa and pod records)", loc="left")
    xs, ys = _extend(hpa.max_replicas, hi)
    ax.plot(xs, ys, drawstyle="steps-post", color=LIMIT_COLOUR, linewidth=1.2, linestyle=":", label="maxReplicas")
    if hpa.ready:
        xs, ys = _extend(hpa.ready, hi)
        ax.plot(xs, ys, drawstyle="steps-post", color=READY_COLOUR, linewidth=2.2, label="ready", zorder=3)
    xs, ys = _extend(hpa.desired, hi)
    ax.plot(xs, ys, drawstyle="steps-post", color=DESIRED_COLOUR, linewidth=1.8, linestyle="--",
            label="HPA desired", zorder=4)
    top = max(n for _, n in hpa.desired + hpa.max_replicas + hpa.ready)
    ax.set_ylim(-0.3, max(1, top) * 1.15 + 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(ax)


def _exit_groups(exits: Sequence[Exit]) -> dict[tuple[int, str, str], list[Exit]]:
    """Exits in the same zone, second and code, together: one label each ("exit 137 (x2)")."""
    groups: dict[tuple[int, str, str], list[Exit]] = {}
    for e in exits:
        code = "?" if e.code is None else str(e.code)
        groups.setdefault((math.floor(e.x), e.zone, code), []).append(e)
    return groups


def _extend(points: Sequence[tuple[float, int]], hi: float) -> tuple[list[float], list[float]]:
    """Step points with one value per time (the last one: records at the same moment draw no spike), held to
    the right edge of the plot."""
    last: dict[float, int] = {}
    for x, n in points:
        last[x] = n
    xs, ys = list(last), [float(n) for n in last.values()]
    return [*xs, max(hi, xs[-1])], [*ys, ys[-1]]


def _zone_order(zone: str) -> tuple[bool, str]:
    return zone == UNKNOWN_ZONE, zone


def _zone_colours(zones: Iterable[str]) -> dict[str, str]:
    named = sorted(z for z in zones if z != UNKNOWN_ZONE)
    colours = {zone: ZONE_COLOURS[i % len(ZONE_COLOURS)] for i, zone in enumerate(named)}
    colours[UNKNOWN_ZONE] = "#7f7f7f"
    return colours


def _legend(ax: Axes) -> None:
    """The legend beside the panel, never over its data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False, borderaxespad=0.0)


def _title(fig: Figure, journal: Journal) -> None:
    outcome = journal.outcome
    run = f"run {journal.run_id}" if journal.run_id else "run"
    facts = journal.facts
    where = []
    if facts.context:
        where.append(f"cluster {facts.context}")
    if facts.nodes:
        where.append(f"{facts.nodes} nodes" + (f" in {facts.zones} zones" if facts.zones else ""))
    duration = journal.ended - journal.started if journal.ended and journal.started else 0.0
    if duration:
        where.append(f"{duration:.0f} s")
    fig.suptitle(f"{journal.experiment.name} — {run} — {outcome}", fontsize=15, fontweight="bold",
                 color=OUTCOME_COLOURS.get(outcome, "#b22222"), x=0.01, ha="left")
    if where:
        fig.text(0.99, 0.995, " · ".join(where), ha="right", va="top", fontsize=10, color="#555555")
