"""The HTML report built from schema-exact fake results: content, escaping, self-containment."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from xml.etree import ElementTree

import pandas as pd
import pytest
from fixtures_results import (
    FakeGrid,
    make_results,
    mark_unfinished,
    write_results,
)

from flooding.config import RunConfig
from flooding.report import build_report, main, plots, stats, tables

BUILT_AT = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)
GRID = FakeGrid(
    datasets=("spiral", "gaussians"),
    label_noises=(0.0, 0.2),
    weight_decays=(0.0, 1e-4),
    methods=("flood", "iflood"),
    flood_levels=(0.02, 0.05, 0.1),
    seeds=(0, 1, 2),
    epochs=12,
)


class Page(HTMLParser):
    """The tags of a page, with their attributes, and its visible text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.tags if tag == name]


def build(tmp_path, metrics: pd.DataFrame, summary: pd.DataFrame) -> str:
    out = build_report(metrics, summary, tmp_path / "report.html", built_at=BUILT_AT)
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def results() -> tuple[pd.DataFrame, pd.DataFrame]:
    metrics, summary = make_results(GRID)
    spiral = summary[summary["dataset"] == "spiral"]
    baseline = spiral[(spiral["flood_level"] == 0) & (spiral["seed"] == 2)]["run_dir"].iloc[0]
    flooded = spiral[spiral["flood_level"] == 0.1]["run_dir"].iloc[0]
    return mark_unfinished(
        metrics,
        summary,
        {
            baseline: ("failed", "RuntimeError: out of memory <allocating 2 GiB>"),
            flooded: ("diverged", "training loss is NaN at epoch 6"),
        },
    )


@pytest.fixture(scope="module")
def report_text(results, tmp_path_factory) -> str:
    return build(tmp_path_factory.mktemp("report"), *results)


def test_cli_reads_the_parquet_files_and_writes_one_page(tmp_path, results, capsys):
    metrics_path, summary_path = write_results(*results, tmp_path / "results")
    out = tmp_path / "reports" / "report.html"
    argv = ["--metrics", str(metrics_path), "--summary", str(summary_path), "--out", str(out)]
    assert main([*argv, "--title", "Grid <A>"]) == 0
    assert f"report: {out}" in capsys.readouterr().out
    page = Page(out.read_text(encoding="utf-8"))
    assert "Grid &lt;A&gt;" in out.read_text(encoding="utf-8")
    # Overview tables (what was run, unfinished runs, missing seeds), one per dataset, the
    # methods side by side, the RQ3 table, the grid warnings (edge of the grid, training
    # length), the RQ2 tables (chosen b; predicted b against validated b), the
    # double-descent table.
    assert len(page.all("table")) == 12
    # RQ2: chosen b against noise, a panel per dataset and architecture (2), accuracy against
    # b, a panel per dataset, architecture and method (4); RQ4: four panels per dataset and
    # architecture.
    assert len(page.all("img")) == 14


def test_results_from_before_a_setting_existed_still_report(tmp_path, results, report_text):
    # A summary written before the newest RunConfig field existed: the field takes its
    # default, and the page is the one the complete summary gives.
    metrics, summary = results
    newest = list(RunConfig().to_dict())[-1]
    older = summary.drop(columns=newest)
    assert build(tmp_path, metrics, older) == report_text


def test_every_figure_is_an_inline_svg_of_its_stated_size(report_text):
    page = Page(report_text)
    images = page.all("img")
    assert images
    for attrs in images:
        prefix = "data:image/svg+xml;base64,"
        assert attrs["src"].startswith(prefix) and attrs["alt"]
        svg = ElementTree.fromstring(base64.b64decode(attrs["src"][len(prefix) :]))
        # matplotlib writes points (1/72 inch); the page shows PX_PER_INCH pixels an inch.
        width = float(svg.attrib["width"].removesuffix("pt")) * plots.PX_PER_INCH / 72
        height = float(svg.attrib["height"].removesuffix("pt")) * plots.PX_PER_INCH / 72
        assert (round(width), round(height)) == (int(attrs["width"]), int(attrs["height"]))
        # Text stays text: a reader can search it and it stays sharp at any zoom.
        assert next(svg.iter("{http://www.w3.org/2000/svg}text"), None) is not None


def test_page_refers_to_nothing_outside_itself(report_text):
    text = report_text
    assert "http://" not in text and "https://" not in text
    page = Page(text)
    assert not page.all("script") and not page.all("link")
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            if attrs.get(name) is not None:
                assert attrs[name].startswith(("data:", "#")), (tag, attrs)
    assert "url(" not in text and "@import" not in text
    policy = next(a for a in page.all("meta") if a.get("http-equiv"))
    assert policy["content"].startswith("default-src 'none'")


def test_text_from_the_data_is_escaped(tmp_path):
    grid = FakeGrid(datasets=("<script>alert(1)</script>",), archs=('mlp"&x',), seeds=(0, 1))
    metrics, summary = make_results(grid)
    first = summary["run_dir"].iloc[1]
    metrics, summary = mark_unfinished(
        metrics, summary, {first: ("failed", "<img src=x onerror=alert(2)>")}
    )
    text = build(tmp_path, metrics, summary)
    assert "<script" not in text.lower() and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(2)&gt;" in text
    assert "mlp&#34;&amp;x" in text  # markupsafe writes a quote as &#34;


def test_main_table_shows_the_paired_comparison(report_text, results):
    text = report_text
    comparison = stats.compare(results[1])
    for _, row in comparison.iterrows():
        n = int(row["n_pairs"])
        assert tables.accuracy(row["baseline_mean"], row["baseline_std"], n) in text
        assert tables.accuracy(row["flooded_mean"], row["flooded_std"], n) in text
        assert f"{100 * row['mean_difference']:+.2f}" in text
    # The failed b = 0 run of seed 2 leaves two paired seeds in those spiral rows.
    short = comparison[comparison["n_pairs"] == 2]
    assert set(short["dataset"]) == {"spiral"} and (short["n_expected"] == 3).all()
    assert text.count('class="warn">2 of 3</td>') == len(short) // 2  # one cell per row


def test_unfinished_runs_and_missing_seeds_are_listed(report_text):
    text = report_text
    assert "2 runs did not complete" in text
    assert "RuntimeError: out of memory &lt;allocating 2 GiB&gt;" in text
    assert "training loss is NaN at epoch 6" in text
    assert "without a completed run for every seed: 2." in text


def test_report_without_flooded_or_completed_runs(tmp_path):
    metrics, summary = make_results(FakeGrid(flood_levels=(), seeds=(0, 1)))
    text = build(tmp_path, metrics, summary)
    assert "No comparison is possible" in text
    assert "no completed run with b &gt; 0" in text
    failed = {d: ("failed", "boom") for d in summary["run_dir"]}
    metrics, summary = mark_unfinished(metrics, summary, failed)
    text = build(tmp_path, metrics, summary)
    assert "No completed runs." in text and f"{len(summary)} runs did not complete" in text


def test_cli_reports_a_grid_whose_runs_all_failed_before_any_epoch(tmp_path):
    _, summary = make_results(FakeGrid(seeds=(0,)))
    summary = summary.assign(status="failed", error="no data", epochs_completed=0)
    # What aggregation writes when no run has a metric row.
    empty = pd.DataFrame(columns=["epoch", "run_dir", "status"])
    metrics_path, summary_path = write_results(empty, summary, tmp_path)
    out = tmp_path / "report.html"
    argv = ["--metrics", str(metrics_path), "--summary", str(summary_path), "--out", str(out)]
    assert main(argv) == 0
    text = out.read_text(encoding="utf-8")
    assert f"{len(summary)} runs did not complete" in text and "No completed runs." in text


def test_optional_environment_columns_are_shown(tmp_path, results):
    metrics, summary = results
    summary = summary.assign(
        device="cuda:0 (NVIDIA H100)",
        host="node1",
        started="2026-01-01T10:00:00+00:00",
        finished="2026-01-01T12:30:00+00:00",
        version_torch="2.14.1",
    )
    text = build(tmp_path, metrics, summary)
    assert "2026-01-01 10:00 to 2026-01-01 12:30 UTC" in text
    assert re.search(r"cuda:0 \(NVIDIA H100\) \(\d+ runs\)", text)
    assert re.search(r"<dt>torch</dt><dd>2\.14\.1 \(\d+ runs\)</dd>", text)


def test_captions_name_sizes_plainly_and_only_options_that_apply(tmp_path):
    grid = FakeGrid(datasets=("digits", "spiral"), seeds=(0, 1, 2), epochs=6)
    metrics, summary = make_results(grid)
    page = Page(build(tmp_path, metrics, summary))
    captions = [t for t in page.text if t.startswith("Same in every row:")]
    assert len(captions) == 2
    digits, spiral = captions
    # The sizes used, never "dataset default": digits' whole set, the synthetic default.
    assert "train size 1438, test size 359" in digits and "train size 0" not in digits
    assert "train size 1000, test size 20000" in spiral
    assert not any("dataset default" in t for t in page.text)
    assert "spiral noise" not in digits and "gaussians mean" not in digits
    assert "spiral noise" in spiral and "gaussians mean" not in spiral


def test_flatness_is_compared_when_measured_and_said_missing_when_not(tmp_path, results):
    metrics, summary = results
    text = build(tmp_path, metrics, summary)
    assert "Not measured: the summary has no sharpness column." in text
    # Flooded runs 20 % flatter than b = 0, with a little per-seed spread.
    sharpness = 0.5 * (1 - 0.2 * (summary["flood_level"] > 0)) + 0.001 * summary["seed"] ** 2
    text = build(tmp_path, metrics, summary.assign(sharpness=sharpness))
    assert "Not measured" not in text
    page = Page(text)
    start = page.text.index("Flatness")
    assert any(t.startswith("-0.1") for t in page.text[start:])  # Δ of -0.1 at the chosen b


def test_explanations_are_notes_under_their_table_not_hover_titles(report_text):
    page = Page(report_text)
    assert not any("title" in attrs for _, attrs in page.tags)
    # The ⚠ of a b on the grid's edge points to a numbered note that says what to add.
    notes = [t for t in page.text if t.strip().startswith("on the grid's edge: add b =")]
    assert notes
    assert "<sup>1</sup>" in report_text


def test_every_link_on_the_page_has_its_target(report_text):
    page = Page(report_text)
    targets = {attrs["id"] for _, attrs in page.tags if attrs.get("id")}
    links = [attrs["href"][1:] for attrs in page.all("a")]
    assert {"rq1", "rq2", "rq3", "rq4-descent", "rq4-flatness"} <= set(links)
    assert set(links) <= targets
