"""Showing simulated runs: a plain-text table for the terminal, and a report (PNG + Markdown page)
that puts several policies side by side. matplotlib (the optional ``report`` extra) is imported only
when a report is asked for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from elastic.sim.engine import SimResult
from provisioner.errors import BadInput, OscarDeployError

TABLE_COLUMNS = (
    ("policy", "policy", "{}"),
    ("node_hours", "node-h", "{:.2f}"),
    ("cost", "cost", "{:.2f}"),
    ("wait_mean_s", "wait mean s", "{:.1f}"),
    ("wait_p50_s", "wait p50 s", "{:.1f}"),
    ("wait_p95_s", "wait p95 s", "{:.1f}"),
    ("wait_max_s", "wait max s", "{:.1f}"),
    ("jobs", "jobs", "{}"),
    ("jobs_unserved", "unserved", "{}"),
    ("jobs_interrupted", "interrupted", "{}"),
    ("scale_ups", "ups", "{}"),
    ("scale_downs", "downs", "{}"),
    ("ratio_to_boot_aware_bound", "× bound", "{:.3f}"),
    ("rescheduled", "resched", "{}"),
)


CURRENCY = "USD"
"""The groups' ``cost_per_hour`` is in US dollars, as the EC2 prices plans are made from."""

COLUMNS_EXPLAINED = f"""What the columns say:

- **node-h**: node-hours the policy kept machines on (booting, idle or busy), every group summed.
- **cost**: those hours at each group's `cost_per_hour`, in {CURRENCY}.
- **wait mean s**, **wait p50 s**, **wait p95 s**, **wait max s**: seconds from a job's submission to
  its start (mean, median, 95th percentile, worst).
- **jobs**, **unserved**: jobs in the trace; jobs that never started before the trace ended.
- **interrupted**: running jobs whose node was drained under them (an OSCAR Job has
  `backoffLimit: 0`, so each is a failed job).
- **ups**, **downs**: nodes the policy powered on, and off.
- **× bound**: node-h divided by the boot-aware lower bound below (1.00 would be perfect); the
  bound packs every job perfectly at every instant and pays each boot only once, so no real
  policy reaches it.
- **resched** (with `--rescheduler-threshold`): jobs pending longer than that threshold, which
  OSCAR's rescheduler would have sent to another cluster."""


def _columns(results: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The columns every run has (``rescheduled`` only where a threshold was given)."""
    return [c for c in TABLE_COLUMNS if all(c[0] in r for r in results)]


def render_results_table(results: Sequence[dict[str, Any]]) -> str:
    """Aligned text table of the runs, with both lower bounds underneath."""
    columns = _columns(results)
    header = [title for _, title, _ in columns]
    rows = [[fmt.format(result[key]) for key, _, fmt in columns] for result in results]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.rjust(width) if i else cell.ljust(width)
                       for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *rows]]
    if results:
        first = results[0]
        lines.append("")
        lines.append(f"lower bounds: {first['lower_bound_node_hours']:.2f} node-h (zero boot), "
                     f"{first['lower_bound_boot_aware_node_hours']:.2f} node-h (boot-aware)")
    return "\n".join(lines)


def markdown_table(results: Sequence[dict[str, Any]], *, extra: Sequence[str] = ()) -> str:
    """The same runs as a Markdown table (``extra`` keys, e.g. ``trace``, go first)."""
    keys = [*extra, *(key for key, _, _ in _columns(results))]
    titles = [*extra, *(title for _, title, _ in _columns(results))]
    formats = {key: fmt for key, _, fmt in TABLE_COLUMNS}
    lines = ["| " + " | ".join(titles) + " |", "|" + "|".join("---" for _ in titles) + "|"]
    for result in results:
        cells = [formats.get(key, "{}").format(result[key]) for key in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_figure(sims: Sequence[SimResult], results: Sequence[dict[str, Any]], title: str) -> Any:
    """One panel per policy: CPUs requested (pending + running) and nodes on per group, over time.

    Every panel has the same scales (time, CPUs, nodes), so policies compare at a glance; the node
    axis has whole-number ticks; each legend sits right of its panel, never over the lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(len(sims), 1, figsize=(12.5, 2.8 * len(sims) + 0.6), sharex=True,
                             sharey=True, squeeze=False)
    node_axes = []
    top_nodes = 1
    for ax, sim, result in zip(axes[:, 0], sims, results, strict=True):
        times = [sample[0] / 3600 for sample in sim.timeline]
        demand = [sample[2] / 1000 for sample in sim.timeline]
        ax.fill_between(times, demand, step="post", color="0.85", lw=0, label="CPUs requested")
        ax.set_ylabel("CPUs requested")
        ax.set_ylim(bottom=0)
        nodes_ax = ax.twinx()
        node_axes.append(nodes_ax)
        for index, group in enumerate(sim.node_seconds):
            counts = [sample[1].get(group, 0) for sample in sim.timeline]
            top_nodes = max(top_nodes, *counts)
            nodes_ax.step(times, counts, where="post", lw=1.2, color=f"C{index}", label=f"nodes on: {group}")
        nodes_ax.set_ylabel("nodes on")
        nodes_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(
            f"{sim.policy}: {result['node_hours']:.2f} node-h (bound {result['lower_bound_node_hours']:.2f}, "
            f"boot-aware {result['lower_bound_boot_aware_node_hours']:.2f}), cost {result['cost']:.2f} "
            f"{CURRENCY}, wait p95 {result['wait_p95_s']:.0f} s, unserved {result['jobs_unserved']}",
            fontsize=9,
        )
        lines = ax.get_legend_handles_labels()
        more = nodes_ax.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left",
                  bbox_to_anchor=(1.07, 1.0), borderaxespad=0.0)
    for nodes_ax in node_axes:  # twin axes share nothing by themselves: one node scale for all panels
        nodes_ax.set_ylim(0, top_nodes * 1.1 + 0.5)
    axes[-1, 0].set_xlabel("time (h)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_runs(sims: Sequence[SimResult], results: Sequence[dict[str, Any]], png: Path,
              title: str) -> None:
    """``build_figure`` saved as a PNG (legends outside the panels included)."""
    import matplotlib.pyplot as plt

    fig = build_figure(sims, results, title)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90, bbox_inches="tight")
    plt.close(fig)


def prepare_report_dir(report: Path) -> None:
    """Make the directory ``--report`` writes into, so an unusable path is refused as bad input (exit 2)
    before the runs, not as an internal error after minutes of simulation; so is a missing matplotlib
    (the optional ``report`` extra: neither the daemon nor its image needs it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BadInput("simulate --report draws its figures with matplotlib, which is not installed: "
                       "pip install 'oscar-deploy[report]'") from None
    if report.parent.exists() and not report.parent.is_dir():
        raise BadInput(f"{report}: cannot write the report: {report.parent} is not a directory")
    try:
        report.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{report}: cannot write the report: cannot make {report.parent}: "
                       f"{exc.strerror or exc}") from None


def write_report(sims: Sequence[SimResult], results: Sequence[dict[str, Any]], report: Path,
                 title: str) -> tuple[Path, Path]:
    """Write ``report`` as a PNG and a Markdown page beside it; return both paths.

    ``report`` may name the PNG (``x.png``), the page (``x.md``) or neither (both get a suffix).
    """
    base = report.with_suffix("") if report.suffix in (".png", ".md", ".html") else report
    png, page = base.with_name(base.name + ".png"), base.with_name(base.name + ".md")
    try:
        plot_runs(sims, results, png, title)
    except OSError as exc:
        raise OscarDeployError(f"{png}: cannot write the report: {exc.strerror or exc}") from None
    text = [f"# {title}", "", markdown_table(results), "", COLUMNS_EXPLAINED, "",
            f"Lower bounds: {results[0]['lower_bound_node_hours']:.2f} node-hours with zero boot, "
            f"{results[0]['lower_bound_boot_aware_node_hours']:.2f} boot-aware.", "",
            f"![demand and nodes on per group]({png.name})", ""]
    try:
        page.write_text("\n".join(text), encoding="utf-8")
    except OSError as exc:
        raise OscarDeployError(f"{page}: cannot write the report: {exc.strerror or exc}") from None
    return png, page
