"""The web console in a real headless browser against a real ``arrowlog serve``.

Playwright (sync API) drives Debian's ``/usr/bin/chromium`` (Playwright's own browser
download cannot work here). The module is skipped when either is missing; ``.ci/run``
installs chromium, so CI runs it. One server with demo data (``generate_web_logs``) and
one browser serve the module; each test gets a fresh browser context (empty storage) and
leaves a screenshot of what it checked under its tmp dir.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import arrowlog
from arrowlog.demo import DEMO_STREAM, generate_web_logs
from tests.conftest import TEST_TOKEN
from tests.integration.conftest import ArrowlogServe, start_arrowlog_serve

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

expect = sync_api.expect
Page = sync_api.Page

# Without the networking flags chromium's background calls are refused by this machine's
# closed network; Playwright gives every launch a fresh, empty profile directory.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DEMO_ROWS = 3000
TAIL_STREAM = "app_events"
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@dataclass
class Demo:
    server: ArrowlogServe
    table: pa.Table  # the demo stream's records, as generated

    @property
    def url(self) -> str:
        return self.server.http_url + "/"


def _seed(data_dir: Path) -> pa.Table:
    tables = list(generate_web_logs(DEMO_ROWS, seed=7, start=START, span=timedelta(hours=2)))
    with arrowlog.open(data_dir) as log:
        for table in tables:
            log.append(DEMO_STREAM, table)
        log.append(TAIL_STREAM, [{"ts": START, "level": "INFO", "message": "seeded"}])
    return pa.concat_tables(tables)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    base = tmp_path_factory.mktemp("console")
    table = _seed(base / "data")
    server = start_arrowlog_serve(base)
    yield Demo(server, table)
    assert server.stop() == 0, server.process.output()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: object, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)  # type: ignore[attr-defined]
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.screenshot(path=tmp_path / "final.png")
    context.close()
    assert not errors, errors  # no uncaught exception in the console's script


def run(page: Page, sql: str) -> None:
    """Type ``sql`` and run it with Ctrl+Enter, as a person would."""
    page.fill("#sql", sql)
    page.press("#sql", "Control+Enter")


def append(server: ArrowlogServe, stream: str, records: list[dict[str, object]]) -> None:
    with server.client() as client:
        body = "".join(json.dumps(r) + "\n" for r in records)
        r = client.post(
            f"/v1/streams/{stream}/records",
            content=body,
            headers={"Content-Type": "application/x-ndjson"},
        )
    assert r.status_code == 200, r.text


# -- streams and queries ---------------------------------------------------------------


def test_stream_list_shows_the_demo_stream(demo: Demo, page: Page, tmp_path: Path) -> None:
    page.goto(demo.url)
    item = page.locator(f"li.stream[data-stream='{DEMO_STREAM}']")
    expect(item.locator(".rows")).to_have_text(f"{DEMO_ROWS:,} rows")
    item.locator("summary").click()
    expect(item.locator(".columns li")).to_have_count(len(demo.table.schema) + 2)  # + system
    expect(item.locator(".columns")).to_contain_text("latency_ms")
    lo, hi = (v.as_py() for v in pc.min_max(demo.table["ts"]).values())
    span = f"{lo:%Y-%m-%d %H:%M:%S} → {hi:%H:%M:%S} UTC"  # the end's date only if it differs
    expect(item.locator(".range")).to_have_text(span)
    expect(page.locator(f"li.stream[data-stream='{TAIL_STREAM}']")).to_be_visible()
    page.screenshot(path=tmp_path / "streams.png")


def test_a_typed_query_shows_its_rows_and_count(demo: Demo, page: Page, tmp_path: Path) -> None:
    errors = int(pc.sum(pc.equal(demo.table["level"], "ERROR")).as_py())
    assert 0 < errors < 500  # one page
    page.goto(demo.url)
    run(page, f"SELECT ts, host, status FROM {DEMO_STREAM} WHERE level = 'ERROR' ORDER BY ts")
    expect(page.locator("#row-count")).to_have_text(f"{errors} rows")
    expect(page.locator("#result-table tbody tr")).to_have_count(errors)
    expect(page.locator("#result-table thead th")).to_have_count(3)
    expect(page.locator("#query-time")).to_have_text(re.compile(r"^in \d+ ms$|^in [\d.]+ s$"))
    expect(page.locator("#load-more")).to_be_hidden()
    page.screenshot(path=tmp_path / "results.png")


def test_large_results_come_a_page_at_a_time(demo: Demo, page: Page, tmp_path: Path) -> None:
    page.goto(demo.url)
    run(page, f"SELECT _offset, message FROM {DEMO_STREAM} ORDER BY _offset LIMIT 1200")
    rows = page.locator("#result-table tbody tr")
    expect(page.locator("#row-count")).to_have_text("first 500 rows (more available)")
    expect(rows).to_have_count(500)
    page.click("#load-more")
    expect(rows).to_have_count(1000)
    page.click("#load-more")
    expect(page.locator("#row-count")).to_have_text("1,200 rows")
    expect(rows).to_have_count(1200)
    expect(rows.nth(1199).locator("td").first).to_have_text("1199")
    expect(page.locator("#load-more")).to_be_hidden()
    page.screenshot(path=tmp_path / "paged.png")


def test_a_bad_query_shows_the_engine_error(demo: Demo, page: Page, tmp_path: Path) -> None:
    sql = f"SELECT no_such_column FROM {DEMO_STREAM}"
    with demo.server.client() as client:
        api = client.post("/v1/query", json={"sql": sql}).json()
    page.goto(demo.url)
    run(page, sql)
    error = page.locator("#query-error")
    expect(error).to_be_visible()
    expect(error).to_have_text(f"{api['error']}: {api['message']}")  # the engine's words
    assert "no_such_column" in api["message"]
    expect(page.locator("#query-status")).to_contain_text("Failed after")
    page.screenshot(path=tmp_path / "error.png")


def test_recent_queries_are_remembered(demo: Demo, page: Page) -> None:
    page.goto(demo.url)
    run(page, "SELECT 1 AS one")
    expect(page.locator("#row-count")).to_have_text("1 row")
    run(page, "SELECT 2 AS two")
    expect(page.locator("#result-table thead th")).to_contain_text("two")
    page.reload()
    options = page.locator("#history option")
    expect(options).to_have_count(3)
    expect(options.nth(1)).to_have_text("SELECT 2 AS two")
    page.select_option("#history", index=2)
    expect(page.locator("#sql")).to_have_value("SELECT 1 AS one")


# -- chart and export --------------------------------------------------------------------


def test_time_series_chart_has_a_point_per_row(demo: Demo, page: Page, tmp_path: Path) -> None:
    minutes = len(pc.unique(pc.floor_temporal(demo.table["ts"], unit="minute")))
    page.goto(demo.url)
    run(
        page,
        "SELECT date_trunc('minute', ts) AS minute, count(*) AS requests, "
        f"avg(latency_ms) AS avg_ms FROM {DEMO_STREAM} GROUP BY 1 ORDER BY 1",
    )
    expect(page.locator("#row-count")).to_have_text(f"{minutes} rows")
    page.click("#tab-chart")
    chart = page.locator("#chart svg")
    expect(chart).to_have_attribute("data-kind", "line")
    expect(chart.locator("path.series")).to_have_count(2)
    expect(chart.locator("circle.point")).to_have_count(2 * minutes)
    expect(page.locator("#chart-note")).to_have_text("requests, avg_ms by minute")
    page.screenshot(path=tmp_path / "chart-line.png")
    page.select_option("#chart-kind", "bar")
    expect(chart.locator("rect.bar")).to_have_count(2 * minutes)


def test_categorical_result_gets_a_bar_chart(demo: Demo, page: Page, tmp_path: Path) -> None:
    services = len(pc.unique(demo.table["service"]))
    page.goto(demo.url)
    run(page, f"SELECT service, count(*) AS n FROM {DEMO_STREAM} GROUP BY service")
    expect(page.locator("#row-count")).to_have_text(f"{services} rows")
    page.click("#tab-chart")
    expect(page.locator("#chart svg rect.bar")).to_have_count(services)
    expect(page.locator("#chart-note")).to_have_text("n by service")
    page.screenshot(path=tmp_path / "chart-bar.png")


def test_export_downloads_csv_and_arrow(demo: Demo, page: Page) -> None:
    page.goto(demo.url)
    run(page, f"SELECT _offset, service FROM {DEMO_STREAM} ORDER BY _offset LIMIT 700")
    expect(page.locator("#row-count")).to_contain_text("500")
    with page.expect_download() as download:
        page.click("#export-csv")
    assert download.value.suggested_filename.endswith(".csv")
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    assert rows[0] == ["_offset", "service"]
    assert len(rows) == 701  # the whole result, not the page on screen
    with page.expect_download() as download:
        page.click("#export-arrow")
    assert download.value.suggested_filename.endswith(".arrows")
    table = pa.ipc.open_stream(Path(download.value.path()).read_bytes()).read_all()
    assert table.num_rows == 700
    assert table.column("_offset").to_pylist() == list(range(700))


# -- live tail ---------------------------------------------------------------------------


def start_tail(page: Page, demo: Demo) -> None:
    page.goto(demo.url)
    page.click("#tab-tail")
    page.select_option("#tail-stream", TAIL_STREAM)
    page.click("#tail-start")
    expect(page.locator("#tail-status")).to_contain_text(f"Following {TAIL_STREAM} from offset")


def test_tail_shows_records_posted_after_it_started(demo: Demo, page: Page, tmp_path: Path) -> None:
    start_tail(page, demo)
    rows = page.locator("#tail-rows tr")
    expect(rows).to_have_count(0)  # records from before are not replayed
    append(demo.server, TAIL_STREAM, [{"ts": "2026-11-23T10:00:00Z", "level": "INFO", "message": "hello from httpx"}])  # fmt: skip
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("hello from httpx")
    expect(rows.first.locator(".level")).to_have_text("INFO")
    page.screenshot(path=tmp_path / "tail.png")


def test_tail_pause_resume_and_level_filter(demo: Demo, page: Page, tmp_path: Path) -> None:
    start_tail(page, demo)
    rows = page.locator("#tail-rows tr")
    page.click("#tail-pause")
    expect(page.locator("#tail-status")).to_contain_text("Paused at offset")
    append(demo.server, TAIL_STREAM, [
        {"ts": "2026-11-23T10:00:01Z", "level": "DEBUG", "message": "while paused 1"},
        {"ts": "2026-11-23T10:00:02Z", "level": "ERROR", "message": "while paused 2"},
    ])  # fmt: skip
    expect(rows).to_have_count(0)
    page.click("#tail-pause")  # resume: from the offset it paused at, nothing missed
    expect(rows).to_have_count(2)
    page.select_option("#tail-level", "WARN")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("while paused 2")
    append(demo.server, TAIL_STREAM, [
        {"ts": "2026-11-23T10:00:03Z", "level": "INFO", "message": "filtered out"},
        {"ts": "2026-11-23T10:00:04Z", "level": "WARN", "message": "shown"},
    ])  # fmt: skip
    expect(rows).to_have_count(2)
    expect(rows.last).to_contain_text("shown")
    page.select_option("#tail-level", "")
    expect(rows).to_have_count(4)
    page.screenshot(path=tmp_path / "tail-filtered.png")


# -- token -------------------------------------------------------------------------------


def test_with_a_token_the_page_asks_for_it_once(
    browser: object, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("console-token")
    with arrowlog.open(base / "data") as log:
        log.append("secured", [{"ts": START, "level": "INFO", "message": "before"}])
    server = start_arrowlog_serve(base, token=TEST_TOKEN)
    context = browser.new_context()  # type: ignore[attr-defined]
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        requests: list[object] = []
        page.on("request", lambda request: requests.append(request))
        page.goto(server.http_url + "/console")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        page.fill("#token-input", "wrong-token")
        page.press("#token-input", "Enter")
        expect(page.locator("#token-error")).to_have_text("Unauthenticated: invalid bearer token")
        page.fill("#token-input", TEST_TOKEN)
        page.press("#token-input", "Enter")
        expect(dialog).to_be_hidden()
        expect(page.locator("li.stream[data-stream='secured']")).to_be_visible()
        run(page, "SELECT message FROM secured")
        expect(page.locator("#row-count")).to_have_text("1 row")

        # The tail sends the header too (fetch, not EventSource).
        page.click("#tab-tail")
        page.click("#tail-start")
        expect(page.locator("#tail-status")).to_contain_text("Following secured from offset 1")
        with server.client() as client:
            client.post(
                "/v1/streams/secured/records",
                json=[{"ts": "2026-11-23T10:00:00Z", "level": "WARN", "message": "live"}],
            )
        expect(page.locator("#tail-rows tr")).to_have_count(1)
        page.screenshot(path=tmp_path / "token.png")

        page.reload()  # asked once: sessionStorage keeps it for the tab
        expect(page.locator("li.stream[data-stream='secured']")).to_be_visible()
        expect(dialog).to_be_hidden()
        urls = [r.url for r in requests]  # type: ignore[attr-defined]
        auth = [r.all_headers().get("authorization") for r in requests if "/v1/" in r.url]  # type: ignore[attr-defined]
        # Asked after the first 401, then a wrong token, then the right one for every call.
        assert auth[:2] == [None, "Bearer wrong-token"]
        assert len(auth) >= 6 and set(auth[2:]) == {f"Bearer {TEST_TOKEN}"}
        assert not any(TEST_TOKEN in url for url in urls)  # never in a URL
    finally:
        context.close()
        assert server.stop() == 0
    assert TEST_TOKEN not in server.process.output()  # nor in the server's logs
