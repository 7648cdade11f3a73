"""``mailsync report``: the quick Plan B report's content, its numbers, and the written page
rendered in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by
``scripts/install-browser.sh``)."""

from __future__ import annotations

import csv
import html
import json
import os
import re
import time
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.report.plan_b import Options, scenario_report
from simulator.report.summary import SUMMARY_TABLE_ID

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
VIEWPORT = (1366, 768)
# A number in scientific notation: 2.34e+03, 9.86e-15, 1e3.
SCIENTIFIC = re.compile(r"\d(?:\.\d+)?[eE][+-]?\d")


def _text(page: str) -> str:
    # What a reader sees: no style, no inline images, no tags.
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    page = re.sub(r'src="data:[^"]*"', "", page)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def _rows(table_html: str) -> list[list[str]]:
    return [
        [html.unescape(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table_html)
    ]


def test_plan_b_report_quick(quick_report: Path) -> None:
    index = quick_report
    assert index.name == "index.html" and index.parent.name == "plan-b-capacity"
    page = index.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") >= 10
    for section in (
        "The plan's claims",
        "Capacity table",
        "Dynamics the plan missed",
        "Fast path against the event simulation",
        "Uncalibrated defaults",
    ):
        assert section in page
    doc = json.loads((index.parent / "report.json").read_text(encoding="utf-8"))
    assert {r["scenario"] for r in doc["scenarios"]} >= {"plan-b-1000@model", "plan-c-5000@plan"}
    with (index.parent / "claims.csv").open() as f:
        claims = list(csv.DictReader(f))
    assert any("1,000 mailboxes in 2 minutes" in c["claim"] for c in claims)
    # The files keep full precision; only the page rounds.
    row = next(r for r in doc["capacity"] if r["feasible"])
    assert row["cost_per_tenant"] == row["cost_month"] / row["tenants"]


def test_summary_comes_first_and_details_are_folded(quick_report: Path) -> None:
    page = quick_report.read_text(encoding="utf-8")
    doc = json.loads((quick_report.parent / "report.json").read_text(encoding="utf-8"))
    sections = re.findall(r'<section id="([^"]+)">(<details>)?', page)
    assert sections[0] == ("summary", "")
    assert all(folded for _, folded in sections[1:])
    # The table of contents links every section.
    toc = page[page.index('<nav class="toc">') : page.index("</nav>")]
    assert [m for m in re.findall(r'href="#([^"]+)"', toc)] == [s for s, _ in sections]
    # One summary row per tenant count of the capacity table, from its results.
    summary = page[page.index(f'id="{SUMMARY_TABLE_ID}"') :]
    rows = _rows(summary[: summary.index("</table>")])[1:]
    assert [r[0] for r in rows] == [f"{c['tenants']:,}" for c in doc["capacity"]]
    for r, c in zip(rows, doc["capacity"], strict=True):
        if c["feasible"]:
            assert c["instance"] in r[4] and "USD/month" in r[6] and r[8].endswith("%")
    section = page[: page.index("</section>")]
    for what in ("of the plan's claims hold", "Shipped presets", "Uncalibrated defaults"):
        assert what in section
    # Per assumption, how many claims hold out of how many: every check is counted once.
    counts = re.findall(r"(\d+) of (\d+) of the plan's claims hold", _text(section))
    assert sum(int(n) for _, n in counts) == len(doc["claims"])
    assert sum(int(k) for k, _ in counts) == sum(c["holds"] for c in doc["claims"])


def test_worker_pools_compare_the_three_profiles(quick_report: Path) -> None:
    page = quick_report.read_text(encoding="utf-8")
    start = page.index("<h2>Worker pools: original, plan-b and plan-b-wc</h2>")
    section = page[start : page.index("</details>", start)]
    text = _text(section)
    assert "Plan B's 17 high-tier workers serve every on-schedule mailbox while 17 of its 34" in (
        " ".join(text.split())
    )
    rows = _rows(section[section.index("<table") :])
    assert [r[:2] for r in rows[1:]] == [
        [prof, assumption]
        for assumption in ("the plan's 10 s per job", "the model's latency defaults")
        for prof in ("original", "plan-b", "plan-b-wc")
    ]
    serving = {(r[0], r[1]): r[3] for r in rows[1:]}
    assert {v for (p, _), v in serving.items() if p == "plan-b"} == {"17"}
    assert {v for (p, _), v in serving.items() if p == "plan-b-wc"} == {"34"}
    # What the text says is measured: off, the lower pools idle; on, they work and the
    # high queue waits less.
    doc = json.loads((quick_report.parent / "report.json").read_text(encoding="utf-8"))
    got = {r["scenario"]: r for r in doc["scenarios"]}
    for key in ("model", "plan"):
        off, on = got[f"plan-b-1000@{key}"], got[f"plan-b-1000-wc@{key}"]
        assert off["util_normal"] == off["util_low"] == 0
        assert on["util_normal"] > 0 and on["util_low"] > 0
        assert on["wait_mean_high"] < off["wait_mean_high"]
        assert on["capacity_per_min"] > off["capacity_per_min"]


def test_numbers_are_for_people(quick_report: Path) -> None:
    page = quick_report.read_text(encoding="utf-8")
    text = _text(page)
    assert not SCIENTIFIC.findall(text), SCIENTIFIC.findall(text)[:10]
    assert "±" in text
    for table in re.findall(r"<table.*?</table>", page, flags=re.S):
        rows = _rows(table)
        for row in rows[1:]:
            # A row that is n/a in every column is left out.
            assert not (len(row) > 2 and all(c == "n/a" for c in row[1:])), row
            # CPU is a percentage of the host, never a bare fraction.
            if row[0].startswith("CPU"):
                assert all(c.endswith("%") for c in row[1:]), row
        header = rows[0]
        for i, name in enumerate(header):
            if "CPU" in name and "%" not in name:
                assert all("%" in r[i] for r in rows[1:] if len(r) > i and r[i]), (name, rows)


def test_every_figure_says_what_to_read(quick_report: Path) -> None:
    page = quick_report.read_text(encoding="utf-8")
    figures = re.findall(r"<figure>.*?</figure>", page, flags=re.S)
    assert len(figures) >= 10
    for f in figures:
        caption = f[f.index("<figcaption>") : f.index("</figcaption>")]
        assert "<b>" in caption, caption


def test_report_open_uses_the_browser_and_tolerates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from simulator.cli import app

    opened: list[str] = []

    def fake_open(url: str, *args: Any, **kwargs: Any) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(webbrowser, "open", fake_open)
    args = ["report", "--fast", "plan-b-1000", "--out", str(tmp_path), "--no-progress", "--open"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert opened == [(tmp_path / "plan-b-1000" / "index.html").resolve().as_uri()]

    def no_browser(url: str, *args: Any, **kwargs: Any) -> bool:
        raise webbrowser.Error("could not locate runnable browser")

    monkeypatch.setattr(webbrowser, "open", no_browser)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "no web browser found" in res.output


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver, the viewport of a 1366×768 laptop."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run scripts/install-browser.sh (as root)")
    # Selenium Manager must never download a driver or a browser.
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        yield driver
    finally:
        driver.quit()


def _browser_problems(browser: Any, index: Path, screenshot: Path | None = None) -> list[str]:
    """Everything wrong with the page as Chromium renders it (empty: nothing)."""
    problems: list[str] = []
    browser.get_log("browser")  # forget what an earlier page logged
    browser.get(index.as_uri())
    if screenshot is not None:
        browser.save_screenshot(str(screenshot))

    # The summary table is on the first screen, whole.
    box = browser.execute_script(
        "const t = document.getElementById(arguments[0]);"
        "if (!t) return null;"
        "const r = t.getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, right: r.right, width: r.width,"
        " rows: t.rows.length, w: innerWidth, h: innerHeight, y: scrollY};",
        SUMMARY_TABLE_ID,
    )
    if box is None:
        problems.append("no summary table")
    else:
        if (box["w"], box["h"]) != VIEWPORT:
            problems.append(f"viewport {box['w']}×{box['h']}")
        if box["rows"] < 2 or box["width"] <= 0:
            problems.append(f"summary table empty: {box}")
        if not (box["y"] == 0 and box["top"] >= 0 and box["bottom"] <= box["h"]):
            problems.append(f"summary table not on the first screen: {box}")
        if box["right"] > box["w"]:
            problems.append(f"summary table wider than the screen: {box}")

    # Open every folded section; every image must decode and have a size.
    browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    deadline = time.monotonic() + 20
    while not browser.execute_script("return Array.from(document.images).every(i => i.complete)"):
        if time.monotonic() > deadline:
            problems.append("images still loading after 20 s")
            break
        time.sleep(0.1)
    images = browser.execute_script(
        "return Array.from(document.images).map(i => ({alt: i.alt, w: i.naturalWidth,"
        " h: i.naturalHeight, shown: i.getBoundingClientRect().width}))"
    )
    problems += [f"broken image: {i['alt']}" for i in images if 0 in (i["w"], i["h"], i["shown"])]
    svgs = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg')).map(s => {"
        "const r = s.getBoundingClientRect(); return [r.width, r.height]; })"
    )
    problems += [f"SVG without a size: {w}×{h}" for w, h in svgs if w <= 0 or h <= 0]

    # Every section has content beyond its title.
    sections = browser.execute_script(
        "return Array.from(document.querySelectorAll('section')).map(s => ({id: s.id,"
        " title: (s.querySelector('h2') || {innerText: ''}).innerText,"
        " text: s.innerText.length, items: s.querySelectorAll('p, table, figure, ul').length}))"
    )
    problems += [
        f"empty section: {s['id']}"
        for s in sections
        if s["items"] == 0 or s["text"] <= len(s["title"]) + 20
    ]

    # What the reader sees has no number in scientific notation.
    text = browser.execute_script("return document.body.innerText")
    problems += [f"scientific notation: {m}" for m in SCIENTIFIC.findall(text)[:10]]

    # No errors on the console.
    problems += [
        f"console: {e['message']}"
        for e in browser.get_log("browser")
        if e["level"] in ("SEVERE", "ERROR")
    ]
    return problems


def test_the_report_in_a_real_browser(
    quick_report: Path, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    shot = quick_report.parent / "first-screen.png"
    problems = _browser_problems(browser, quick_report, shot)
    with capsys.disabled():
        print(f"\nfirst screen of the report ({VIEWPORT[0]}×{VIEWPORT[1]}): {shot}")
    assert problems == []
    assert shot.stat().st_size > 10_000
    n_images = quick_report.read_text(encoding="utf-8").count("<img ")
    assert n_images >= 10


def test_the_browser_check_catches_a_broken_page(quick_report: Path, browser: Any) -> None:
    page = quick_report.read_text(encoding="utf-8")
    broken = (
        page.replace(f'id="{SUMMARY_TABLE_ID}"', 'id="elsewhere"')
        .replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1)
        .replace("</body>", "<script>console.error('boom')</script></body>")
        .replace('<section id="data">', '<section id="data"><p>2.5e+03</p>')
    )
    path = quick_report.parent / "broken.html"
    path.write_text(broken, encoding="utf-8")
    problems = _browser_problems(browser, path)
    assert "no summary table" in problems
    assert sum(p.startswith("broken image") for p in problems) == 1
    assert any(p.startswith("console:") and "boom" in p for p in problems)
    assert "scientific notation: 2.5e+0" in problems


def test_scenario_report(tmp_path: Path) -> None:
    p = tmp_path / "tiny.yaml"
    p.write_text(
        "extends: plan-b-300-original\nname: tiny\nrun: {horizon_s: 900, warmup_s: 100, "
        "replications: 1}\n",
        encoding="utf-8",
    )
    index = scenario_report([str(p)], Options(name="tiny", out=tmp_path, progress=False))
    assert "tiny" in index.read_text(encoding="utf-8")
    assert (index.parent / "scenarios.csv").exists()


def test_fast_report_needs_no_event_simulation(tmp_path: Path) -> None:
    from simulator.report.fast import fast_report

    index = fast_report(["plan-b-1000"], Options(name="fast", out=tmp_path, progress=False))
    page = index.read_text(encoding="utf-8")
    assert "fast path only" in page
    with (index.parent / "scenarios.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["scenario"] == "plan-b-1000"
    assert float(row["throughput_per_min"]) > 150
