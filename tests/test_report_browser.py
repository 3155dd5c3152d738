"""A real headless Chromium opens the report through the DevTools protocol.

It checks what a reader's browser would: no console error, no network request, every
image decodes, the tables are there; and it saves a screenshot. A control page with a
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

from flooding.report import build_report

websocket = pytest.importorskip("websocket", reason="needs the websocket-client package")

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT = 60.0
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
  return {
    images: images.map((image) => image.naturalWidth),
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

    def visit(self, page: Path) -> Visit:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session)
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


def test_chromium_opens_the_report_cleanly(chromium, tmp_path):
    grid = FakeGrid(methods=("flood", "iflood"), label_noises=(0.0, 0.2), epochs=10)
    metrics, summary = make_results(grid)
    failed = {summary["run_dir"].iloc[4]: ("failed", "<b>not bold</b>")}
    metrics, summary = mark_unfinished(metrics, summary, failed)
    report = build_report(metrics, summary, tmp_path / "report.html", title="Browser check")

    visit = chromium.visit(report)

    screenshot = tmp_path / "report.png"
    screenshot.write_bytes(visit.screenshot)
    print(f"screenshot: {screenshot}")
    assert visit.errors == []
    assert visit.requests == []
    assert visit.facts["heading"] == "Browser check"
    # Unfinished runs, missing seeds, two dataset blocks, the chosen-b table.
    assert visit.facts["tables"] == 5 and visit.facts["rows"] > 10
    assert len(visit.facts["images"]) == 4 and all(w > 0 for w in visit.facts["images"])
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
