"""A real headless Chromium opens the report through the DevTools protocol.

It checks what a reader's browser would: no console error, no network request, every
image decodes, the answers and tables are there, at a desktop and at a phone width: every
figure panel at least 360 px wide, no table and nothing else wider than the viewport
(wide tables scroll inside their wrapper); and it saves screenshots. A control page with a
deliberate error and an outside request shows that the checks do catch both.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fixtures_results import FakeGrid, make_results, mark_unfinished
from test_report_efficiency import SACCT, SUBMISSIONS

from flooding.efficiency import account
from flooding.report import build_report
from snakemake_executor_plugin_submitit.accounting import parse_sacct

websocket = pytest.importorskip("websocket", reason="needs the websocket-client package")

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT = 60.0
MOBILE = 600  # narrower viewports are emulated as phones
WIDTHS = (1400, 420)
FLAGS = (
    "--headless=new",
    "--remote-debugging-port=0",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1600",
)
# Runs in the page: waits until every image is decoded (decode() rejects a broken one).
FACTS = """(async () => {
  const images = Array.from(document.images);
  await Promise.all(images.map((image) => image.decode()));
  const right = (element) => element.getBoundingClientRect().right;
  return {
    images: images.map((image) => image.naturalWidth),
    shown: images.map((image) => [image.alt, image.naturalWidth, image.clientWidth]),
    viewport: document.documentElement.clientWidth,
    pageWidth: document.documentElement.scrollWidth,
    tablesOutside: Array.from(document.querySelectorAll("table"))
      .filter((table) => !table.parentElement.classList.contains("scroll")).length,
    wrappersPastEdge: Array.from(document.querySelectorAll(".scroll"))
      .filter((wrapper) => right(wrapper) > document.documentElement.clientWidth + 1).length,
    // Elements reaching past the viewport's right edge that no scroll box contains.
    outside: Array.from(document.body.querySelectorAll("*"))
      .filter((element) => !element.closest(".scroll"))
      .filter((element) => right(element) > document.documentElement.clientWidth + 1)
      .map((element) => element.tagName + "." + element.className),
    verdicts: Object.fromEntries(["rq1", "rq2", "rq3", "rq4"].map((question) => [
      question,
      Array.from(document.querySelectorAll(`#answer-${question} .verdict`))
        .map((verdict) => verdict.textContent),
    ])),
    text: document.body.innerText,
    sections: Array.from(document.querySelectorAll("section")).map((section) => section.id),
    tables: document.querySelectorAll("table").length,
    rows: document.querySelectorAll("table tbody tr").length,
    heading: document.querySelector("h1") ? document.querySelector("h1").textContent : "",
  };
})()"""


@dataclass
class Visit:
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    screenshot: bytes = b""


class DevTools:
    """A minimal Chrome DevTools Protocol client over one websocket (flat sessions)."""

    def __init__(self, url: str) -> None:
        # Chromium refuses websocket clients that send an Origin it was not told about.
        self.socket = websocket.create_connection(url, timeout=TIMEOUT, suppress_origin=True)
        self.last_id = 0
        self.events: list[dict] = []

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(self.socket.recv())
            if reply.get("id") != self.last_id:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply["result"]

    def wait_for(self, method: str, session: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not any(
            e.get("method") == method and e.get("sessionId") == session for e in self.events
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {TIMEOUT} s")
            self.events.append(json.loads(self.socket.recv()))

    def visit(self, page: Path, width: int = 1280) -> Visit:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=1000,
            deviceScaleFactor=1,
            mobile=width < MOBILE,
        )
        self.events.clear()
        self.call("Page.navigate", session, url=page.resolve().as_uri())
        self.wait_for("Page.loadEventFired", session)
        result = self.call(
            "Runtime.evaluate", session, expression=FACTS, awaitPromise=True, returnByValue=True
        )
        visit = Visit()
        if "exceptionDetails" in result:
            visit.errors.append(f"page script: {result['exceptionDetails']}")
        else:
            visit.facts = result["result"]["value"]
        shot = self.call(
            "Page.captureScreenshot", session, format="png", captureBeyondViewport=True
        )
        visit.screenshot = base64.b64decode(shot["data"])
        for event in self.events:
            if event.get("sessionId") == session:
                _record(event, visit)
        self.call("Target.closeTarget", targetId=target)
        return visit


def _record(event: dict, visit: Visit) -> None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        visit.errors.append(str(params["exceptionDetails"]))
    elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
        visit.errors.append(" ".join(str(a.get("value", a)) for a in params["args"]))
    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
        visit.errors.append(params["entry"]["text"])
    elif method == "Network.requestWillBeSent":
        url = params["request"]["url"]
        if not url.startswith(("file:", "data:")):
            visit.requests.append(url)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = (profile.parent / "chromium.log").open("w")
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT
        while not port_file.exists() or len(port_file.read_text().split()) < 2:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start; see {log.name}")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        client = DevTools(f"ws://127.0.0.1:{port}{path}")
        yield client
    finally:
        if client is not None:
            client.call("Browser.close")
            client.socket.close()
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report with every part: failures, two noise levels, both methods, changes, and a
    cluster run's efficiency account."""
    grid = FakeGrid(methods=("flood", "iflood"), label_noises=(0.0, 0.2), epochs=10)
    metrics, summary = make_results(grid)
    previous = summary[summary["seed"] != 2]
    failed = {summary["run_dir"].iloc[4]: ("failed", "<b>not bold</b>")}
    metrics, summary = mark_unfinished(metrics, summary, failed)
    folder = tmp_path_factory.mktemp("browser")
    return build_report(
        metrics,
        summary,
        folder / "report.html",
        title="Browser check",
        previous=previous,
        efficiency=account(SUBMISSIONS, parse_sacct(SACCT)),
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_chromium_opens_the_report_cleanly(chromium, report, width):
    visit = chromium.visit(report, width)

    screenshot = report.parent / f"report-{width}.png"
    screenshot.write_bytes(visit.screenshot)
    print(f"screenshot: {screenshot}")
    assert visit.errors == []
    assert visit.requests == []
    facts = visit.facts
    assert facts["heading"] == "Browser check"
    assert facts["sections"] == [
        "answers",
        "overview",
        "changes",
        "rq1",
        "rq3",
        "grid",
        "rq2",
        "rq4",
        "efficiency",
        "method",
    ]
    # A verdict for every claim of each question: C1; C2 and C6; C3; C4 and C5.
    counts = {question: len(found) for question, found in facts["verdicts"].items()}
    assert counts == {"rq1": 1, "rq2": 2, "rq3": 1, "rq4": 2}
    verdict_words = {"supports", "contradicts", "inconclusive", "not tested"}
    assert all(v in verdict_words for found in facts["verdicts"].values() for v in found)
    assert "dataset default" not in facts["text"]
    # What was run, unfinished runs, missing seeds, changed runs (no answer changed), two
    # dataset blocks, the methods side by side, RQ3, edge of the grid, training length, the
    # chosen-b table, predicted against validated b, the double-descent table, the cluster
    # jobs per rule and per dataset and architecture.
    assert facts["tables"] == 15 and facts["rows"] > 10
    # RQ2: chosen b against noise, a panel per dataset (2), accuracy against b, a panel per
    # dataset and method (4); RQ4: four panels per dataset.
    alts = [alt for alt, _, _ in facts["shown"]]
    assert alts[0].startswith("Chosen b against label noise")
    assert len(alts) == 14 and all(w > 0 for w in facts["images"])
    # Nothing is wider than the viewport; wide tables scroll inside their wrapper.
    # (A desktop scroll bar takes its width from the viewport.)
    assert facts["pageWidth"] <= facts["viewport"] and width - 20 <= facts["viewport"] <= width
    assert facts["tablesOutside"] == 0 and facts["wrappersPastEdge"] == 0
    assert facts["outside"] == []
    for alt, natural, shown in facts["shown"]:
        # Every panel readable: at least 360 px wide on a phone, never blown up past
        # 1.25 times its natural size on a desktop.
        assert 360 <= shown <= 1.25 * natural, alt
    assert visit.screenshot.startswith(b"\x89PNG")


def test_the_checks_catch_errors_requests_and_broken_images(chromium, tmp_path):
    page = tmp_path / "control.html"
    page.write_text(
        "<!DOCTYPE html><title>control</title><h1>control</h1>"
        '<img src="http://127.0.0.1:9/outside.png">'
        "<script>console.error('deliberate')</script>",
        encoding="utf-8",
    )
    visit = chromium.visit(page)
    assert "http://127.0.0.1:9/outside.png" in visit.requests
    assert any("deliberate" in e for e in visit.errors)
    assert not visit.facts  # the image cannot be decoded, so the page script fails
