"""The Dagster UI in a real browser: headless Chromium (Debian's ``chromium`` package, driven by Playwright) against
``dagster-webserver`` on the reference project. It opens the lineage graph (raw sources -> feature groups -> view ->
training data), an asset page (definition metadata: spec, column schema, tags, owners; its checks), clicks
"Materialize" on ``aircraft`` and follows the run to success, then finds the commit in the UI and in the store.

Screenshots go to ``tests/artifacts/browser/`` (git-ignored; ``FS_DAGSTER_ARTIFACTS`` overrides the folder) and
their paths are printed. Skipped with the reason when no Chromium or Playwright is installed (``.ci/run`` installs
Debian's chromium; Playwright is in the dev extra and never downloads a browser here).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from fs_dagster import FeatureStore
from fs_dagster.core.online.embedded import EmbeddedValkey
from test_webserver_ui import _free_port, _group_members, _Webserver, _webserver_binary

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("FS_DAGSTER_ARTIFACTS") or REPO / "tests" / "artifacts") / "browser"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
# how far the metadata table, and the statistics table in its row, reach past the visible part of the page (px)
FITS = """(label) => {
  const key = [...document.querySelectorAll('td')].find(e => e.textContent.trim() === label);
  const outer = key.closest('table');
  let box = outer.parentElement;
  while (box && getComputedStyle(box).overflowX === 'visible') box = box.parentElement;
  const inner = key.parentElement.querySelector('table');
  const right = box.getBoundingClientRect().right;
  return {metadata: Math.max(0, Math.round(outer.getBoundingClientRect().right - right)),
          statistics: Math.max(0, Math.round(inner.getBoundingClientRect().right - right))};
}"""
LATEST_RUN = """{ runsOrError(limit: 1) { __typename ... on Runs { results { runId status
  assetSelection { path } } } } }"""


def _chromium() -> str | None:
    """Debian's browser binary (the /usr/bin/chromium wrapper script adds flags we set ourselves)."""
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _skip_reason() -> str | None:
    if _webserver_binary() is None:
        return "dagster-webserver not found"
    if _chromium() is None:
        return "no Chromium: install Debian's package (apt-get install chromium), as .ci/run does"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python, dev extra) is not installed"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


class Browser:
    """One headless Chromium page; every step can be photographed."""

    def __init__(self, playwright, base_url: str) -> None:
        self.browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        self.page = self.browser.new_page(viewport={"width": 1600, "height": 1000})
        self.base_url = base_url
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.shots: list[Path] = []

    def open(self, path: str) -> None:
        self.page.goto(self.base_url + path, wait_until="domcontentloaded")
        self.dismiss_welcome()

    def dismiss_welcome(self) -> None:
        """The first visit shows a 'Join the Dagster community' dialog over the page: skip it."""
        skip = self.page.get_by_role("button", name="Skip")
        try:
            skip.wait_for(state="visible", timeout=4000)
        except Exception:  # no dialog (already dismissed in this browser)
            return
        skip.click()

    def text(self, text: str, timeout: float = 60, exact: bool = True):
        locator = self.page.get_by_text(text, exact=exact).first
        try:
            locator.wait_for(state="visible", timeout=timeout * 1000)
        except Exception:
            self.shot("failed_waiting_for_" + "".join(c if c.isalnum() else "_" for c in text)[:40])
            raise
        return locator

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        self.shots.append(path)
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        self.browser.close()


def test_lineage_asset_page_and_a_materialization_clicked_in_chromium(tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    home = tmp_path / "dagster_home"
    # the store's path is shown on the asset page: a short one, as a real deployment's (pytest's tmp_path is long)
    store = Path(tempfile.mkdtemp(prefix="fs-", dir="/tmp")) / "store"
    home.mkdir()
    (home / "dagster.yaml").write_text(  # runs start at once (no daemon); no telemetry
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "FS_DAGSTER_ROOT": str(store)}
    for name in ("FS_DAGSTER_SOURCE", "FS_DAGSTER_LANDING"):
        env.pop(name, None)
    port, log_path = _free_port(), tmp_path / "webserver.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [_webserver_binary(), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = _Webserver(proc, port, log_path)
    try:
        server.wait_until_serving(timeout=150)
        with sync_playwright() as playwright:
            browser = Browser(playwright, server.url)
            try:
                _lineage(browser)
                _asset_page_before(browser)
                run_id = _materialize_by_click(browser, server)
                server.await_runs([run_id], timeout=180)
                _asset_page_after(browser, server, FeatureStore(root=store, project="flights"), run_id)
                assert browser.errors == [], browser.errors  # no uncaught exception in the UI's scripts
            except BaseException:
                browser.shot("failed")  # what the page showed when the test stopped
                raise
            finally:
                browser.close()
        print(f"browser test took {time.monotonic() - started:.0f} s; screenshots in {ARTIFACTS}")
    finally:
        pgid = proc.pid
        try:
            server.stop()
        finally:
            EmbeddedValkey(store).stop()  # aircraft is online-enabled: the run started the store's valkey-server
        deadline = time.monotonic() + 10
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _group_members(pgid), f"left behind: {_group_members(pgid)}"
        shutil.rmtree(store.parent, ignore_errors=True)


def _lineage(browser: Browser) -> None:
    """The training data's upstream lineage: raw sources -> feature groups -> feature view -> training data."""
    browser.open("/assets/flight_delays_training_data?view=lineage&lineageScope=upstream&lineageDepth=4")
    graph = browser.page.locator("foreignObject")
    for name in ("planes", "flights", "weather", "aircraft", "flight_outcomes", "route_delay_stats", "weather_hourly",
                 "flight_delays", "raw", "feature_groups", "feature_views", "training_data"):
        try:
            graph.get_by_text(name, exact=True).first.wait_for(state="visible", timeout=90_000)
        except Exception:
            browser.shot(f"failed_lineage_{name}")
            raise
    browser.shot("01_lineage")


def _tab(browser: Browser, name: str) -> None:
    tab = browser.page.get_by_role("tab", name=name)
    (tab.first if tab.count() else browser.text(name)).click()


def _asset_page_before(browser: Browser) -> None:
    """The definition as the UI shows it before any run: description, plain tags, owner, code version, column
    schema with types (from the pandera schema), the spec as JSON, the Dagster type, and the three checks."""
    browser.open("/assets/aircraft")
    browser.text("Aircraft features per tail number from the FAA registry.")
    browser.text("domain: aircraft")  # a plain tag (was fs_dagster.tag/aircraft with an empty value)
    browser.text("ml-platform")
    browser.text("[primary key]")
    browser.text("timestamp[us, tz=UTC]")
    browser.shot("02_aircraft_definition")
    browser.text("fs_dagster/feature_group").scroll_into_view_if_needed()
    browser.text("Compute details").click()  # (collapsed at first)
    browser.text("Code version")
    browser.shot("03_aircraft_definition_metadata")
    browser.text("View type details").click()
    browser.text("FeatureGroupFrame_aircraft_v1", timeout=30, exact=False)  # the dagster-pandas type
    browser.text("no nulls (primary key)")  # a constraint of the key column, from the spec
    browser.shot("04_aircraft_dagster_type")
    browser.page.get_by_role("button", name="OK").click()
    _tab(browser, "Checks")
    for check in ("pandera_schema", "offline_integrity", "online_offline_consistency"):
        browser.text(check, timeout=30)
    browser.shot("05_aircraft_checks_before")


def _materialize_by_click(browser: Browser, server: _Webserver) -> str:
    """Clicks the asset page's "Materialize" button and returns the run it launched."""
    browser.open("/assets/aircraft")
    # (its accessible name starts with the icon's label, "materialization"; its text is the word alone)
    button = browser.page.locator("button").filter(has_text=re.compile(r"^\s*Materialize\s*$")).first
    button.wait_for(state="visible", timeout=60_000)
    before = server.graphql(LATEST_RUN)["runsOrError"]["results"]
    button.click()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = server.graphql(LATEST_RUN)["runsOrError"]["results"]
        if runs and runs != before and runs[0]["runId"] != (before[0]["runId"] if before else None):
            assert runs[0]["assetSelection"] == [{"path": ["aircraft"]}], runs[0]
            browser.shot("06_materialize_clicked")
            return runs[0]["runId"]
        time.sleep(0.5)
    browser.shot("06_materialize_clicked_no_run")
    pytest.fail(f"clicking Materialize launched no run within 60 s:\n{server.log_tail()}")


def _asset_page_after(browser: Browser, server: _Webserver, fs: FeatureStore, run_id: str) -> None:
    """The run page says success; the asset page shows the commit (the store's latest), the statistics table and
    the checks passed in that run."""
    browser.open(f"/runs/{run_id}")
    browser.text("Success", timeout=60)
    browser.shot("07_run_succeeded")

    aircraft = fs.get_feature_group("aircraft")
    commit = aircraft.latest_commit()
    assert aircraft.count() == 3322 and commit is not None
    browser.open("/assets/aircraft")
    browser.text("fs_dagster/commit", timeout=60)
    browser.text(commit, timeout=30)  # the Hudi instant: the asset's data version
    statistics = browser.text("fs_dagster/statistics")
    statistics.scroll_into_view_if_needed()
    browser.text("year_built")
    browser.text("2000 ± 7.193")  # mean ± std of year_built
    browser.shot("08_aircraft_materialized_metadata")
    overflow = browser.page.evaluate(FITS, "fs_dagster/statistics")
    assert overflow == {"metadata": 0, "statistics": 0}, f"pixels cut off at a 1600 px wide window: {overflow}"
    _tab(browser, "Checks")
    browser.text("pandera_schema", timeout=30)
    browser.text("Passed", timeout=60)  # the selected check's latest evaluation
    succeeded = browser.page.get_by_text("Succeeded", exact=True)
    assert succeeded.count() == 3, f"{succeeded.count()} of the 3 checks shown as succeeded"
    browser.shot("09_aircraft_checks_passed")
