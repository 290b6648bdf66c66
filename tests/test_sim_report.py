"""The simulation report as a reader sees it: panels on one scale so policies compare at a glance,
whole nodes on the node axis, legends beside the panels (never over the lines), and a page that says
what each column means and in which currency."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, list]:
    from elastic.sim.trace import load_trace
    from elastic.simulate import load_groups, make_policy, simulate_one

    base = tmp_path_factory.mktemp("report")
    trace = base / "trace.csv"
    trace.write_text("submit_s,cpus,memory_mib,duration_s\n"
                     + "".join(f"{t},1,512,300\n" for t in range(0, 60, 2))
                     + "".join(f"{3000 + t},2,1024,120\n" for t in range(0, 20, 2)))
    groups = base / "groups.yaml"
    groups.write_text("- {name: small, cpus: 2, memory_mib: 4096, max: 8, boot_s: 40, cost_per_hour: 0.1}\n"
                      "- {name: big, cpus: 8, memory_mib: 16384, max: 3, boot_s: 60, cost_per_hour: 0.4,"
                      " priority: 1}\n")
    loaded_groups, jobs = load_groups(groups), load_trace(trace)
    pairs = [simulate_one(jobs, loaded_groups, make_policy(name, loaded_groups, None))
             for name in ("oscar", "clues", "static")]
    return [s for s, _ in pairs], [r for _, r in pairs]


def test_panels_share_their_scales_and_count_nodes_in_whole_numbers(runs: tuple[list, list]) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from elastic.sim.report import build_figure

    sims, results = runs
    fig = build_figure(sims, results, "test")
    try:
        demand_axes = [ax for ax in fig.axes if ax.get_ylabel() == "CPUs requested"]
        node_axes = [ax for ax in fig.axes if ax.get_ylabel() == "nodes on"]
        assert len(demand_axes) == len(node_axes) == 3
        assert len({ax.get_ylim() for ax in demand_axes}) == 1, "CPU scales differ between panels"
        assert len({ax.get_ylim() for ax in node_axes}) == 1, "node scales differ between panels"
        assert len({ax.get_xlim() for ax in demand_axes}) == 1
        for ax in node_axes:
            locator = ax.yaxis.get_major_locator()
            assert isinstance(locator, MaxNLocator) and locator._integer
            assert all(float(t).is_integer() for t in ax.get_yticks())
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax, twin in zip(demand_axes, node_axes, strict=True):
            legend = ax.get_legend()
            assert legend is not None
            box = legend.get_window_extent(renderer)
            for panel in (ax, twin):
                assert not box.overlaps(panel.get_window_extent(renderer)), "a legend covers a panel"
    finally:
        plt.close(fig)


def test_the_page_explains_every_column_and_its_currency(runs: tuple[list, list], tmp_path: Path) -> None:
    from elastic.sim.report import TABLE_COLUMNS, write_report

    sims, results = runs
    png, page = write_report(sims, results, tmp_path / "report", "test")
    text = page.read_text()
    assert png.is_file() and png.stat().st_size > 10_000
    explained = text.split("What the columns say:")[1]
    for _, title, _ in TABLE_COLUMNS[1:]:
        assert f"**{title}**" in explained, f"column {title!r} is not explained"
    assert "in USD" in explained
    assert "DESIGN" not in text
