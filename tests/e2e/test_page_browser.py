"""The node's page (issue 16) in a real browser: Debian `chromium`, headless, driven by Playwright
for Python (`executable_path`, never a downloaded browser), against a running devnet (anvil +
contracts + node + oracle feed, real processes).

- every view (markets, an instrument, the chain, an account) loads without a console error or an
  uncaught page error;
- a crossing pair of orders placed through the HTTP API (the SDK, dev keys) shows in the open
  instrument view, book and trades, within 2 s of the acks (the page is live on the stream);
- the block holding the trade goes sealed -> posted (`optrollup post-batches --once`) -> final
  (an L1 time jump past the 60 s challenge window) in the chain view.

Screenshots of each view are written to $OPTROLLUP_ARTIFACTS/page/ (default tests/artifacts/page/)
and their paths printed (`pytest -s` shows them).

The page does not depend on cext: the test runs in the accelerated pass of `make test` only.
Without chromium it is skipped, except in CI (CI=true), where it fails: scripts/bootstrap.sh
installs it."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from sequencer.l1 import L1Client
from tests.e2e.devnet_proc import Devnet

try:
    from optrollup_client import Client
except ImportError:  # before the SDK became its own distribution (client/)
    from sequencer.client import Client

U = 10**6
REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LIVE_MS = 2000  # issue 16: a trade shows in the book and trades views within 2 s

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(os.environ.get("OPTROLLUP_PUREPYTHON") == "1",
                       reason="browser test: the page does not depend on cext, run once in the accelerated pass"),
    pytest.mark.timeout(240),
]


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"{why} (CI=true: scripts/bootstrap.sh must provide it)")
    pytest.skip(f"{why}: run scripts/bootstrap.sh (it installs Debian chromium and playwright)")


def artifacts_dir() -> Path:
    base = os.environ.get("OPTROLLUP_ARTIFACTS")
    d = Path(base) / "page" if base else REPO / "tests" / "artifacts" / "page"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        _unavailable("Debian `chromium` is not installed")
    return path


@pytest.fixture(scope="module")
def browser(chromium_path: str):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright (the `test` extra) is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory, chromium_path: str) -> Iterator[Devnet]:
    # the poster's cron is off (--post-seconds 3600): the test posts with `post-batches --once`
    d = Devnet(tmp_path_factory.mktemp("page") / "dn", "--post-seconds", "3600", "--no-liquidator",
               "--channel-services", "0")
    try:
        yield d
    finally:
        code = d.stop()
        assert code == 0, d.output()[-3000:]


class Page:
    """One browser tab on the devnet's page; every console error and uncaught error recorded."""

    def __init__(self, browser, base: str, shots: Path) -> None:
        self.base = base.rstrip("/")
        self.shots = shots
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.ctx.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("requestfailed", lambda r: self.errors.append(
            f"request failed: {r.method} {r.url}: {r.failure}"))
        self.page.on("response", lambda r: r.status >= 400 and self.errors.append(
            f"HTTP {r.status}: {r.request.method} {r.url}"))

    def _console(self, msg) -> None:
        where = msg.location or {}
        line = f"console.{msg.type}: {msg.text} ({where.get('url', '')}:{where.get('lineNumber', '')})"
        if msg.type == "error":
            self.errors.append(line)
        elif msg.type == "warning":
            self.warnings.append(line)

    def open(self, route: str) -> None:
        self.page.goto(f"{self.base}/{route}")

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def assert_clean(self, view: str) -> None:
        assert not self.errors, f"{view}: console/page errors:\n" + "\n".join(self.errors)

    def close(self) -> None:
        if self.warnings:
            print("console warnings:\n" + "\n".join(self.warnings))
        self.ctx.close()


@pytest.fixture(scope="module")
def env(devnet: Devnet):
    """The devnet with a marked call to trade and its two funded traders."""
    d = devnet
    alice, bob = (Client(d.api, private_key=k) for k in d.keys[:2])
    call = next(i for i in d.http.get("/v1/instruments").json()["instruments"]
                if i["type"] == "call" and i["strike"] == str(3000 * U))
    d.wait("marks", lambda: d.http.get(f"/v1/instruments/{call['name']}").json()["mark"] is not None)
    d.wait("L2 deposit credits", lambda: all(_collateral(c) >= 10_000 * U for c in (alice, bob)))
    try:
        yield {"devnet": d, "alice": alice, "bob": bob, "instrument": call["name"]}
    finally:
        alice.close()
        bob.close()


def _collateral(c: Client) -> int:
    try:
        return c.account().collateral
    except Exception:  # noqa: BLE001 - not credited yet: 404 until the deposit lands
        return 0


@pytest.fixture
def tab(env, browser) -> Iterator[Page]:
    p = Page(browser, env["devnet"].api, artifacts_dir())
    try:
        yield p
    finally:
        p.close()


def test_views_load_without_console_errors(env, tab: Page) -> None:
    from playwright.sync_api import expect
    d, name = env["devnet"], env["instrument"]
    addr = env["alice"].account_address

    tab.open("")  # `/`: the markets view by default
    expect(tab.page.locator("#conn")).to_have_class("conn live", timeout=10_000)
    expect(tab.page.locator("#markets")).to_be_attached(timeout=10_000)
    expect(tab.page.locator(f'#markets a[href="#/instrument/{name}"]')).to_be_visible(timeout=10_000)
    tab.page.wait_for_timeout(500)  # books resync over the stream
    tab.assert_clean("markets")
    tab.shot("markets")

    tab.open(f"#/instrument/{name}")
    expect(tab.page.locator("#book")).to_be_attached(timeout=10_000)
    expect(tab.page.locator("#trades")).to_be_attached(timeout=10_000)
    expect(tab.page.locator("main h1")).to_contain_text(name)
    tab.page.wait_for_timeout(500)
    tab.assert_clean("instrument")
    tab.shot("instrument")

    head = _latest(d)
    tab.open("#/chain")
    expect(tab.page.locator(f'#chain [data-block="{head}"]')).to_be_visible(timeout=10_000)
    expect(tab.page.locator("#chain [data-block][data-status]").first).to_be_visible(timeout=10_000)
    # live: blocks sealed since (the oracle feed seals one about every second) come in on the stream
    expect(tab.page.locator(f'#chain [data-block="{head + 2}"]')).to_be_visible(timeout=10_000)
    tab.assert_clean("chain")
    tab.shot("chain")

    tab.open(f"#/account/{addr}")
    expect(tab.page.locator("#account")).to_be_attached(timeout=10_000)
    expect(tab.page.locator("#account")).to_contain_text(addr, timeout=10_000)
    tab.assert_clean("account")
    tab.shot("account")

    tab.open("#/account")  # the form, no address
    expect(tab.page.locator("#account")).to_be_attached(timeout=10_000)
    tab.page.wait_for_timeout(300)
    tab.assert_clean("account (no address)")
    assert d.proc.poll() is None


def test_trade_shows_live_then_its_block_goes_final(env, tab: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect
    d, name = env["devnet"], env["instrument"]
    alice, bob = env["alice"], env["bob"]
    page = tab.page
    price = 150 * U  # an empty level: the devnet's book holds no other orders

    tab.open(f"#/instrument/{name}")
    expect(page.locator("#conn")).to_have_class("conn live", timeout=10_000)
    expect(page.locator("#book")).to_be_attached(timeout=10_000)
    expect(page.locator("#trades")).to_be_attached(timeout=10_000)
    page.wait_for_timeout(500)  # subscribed: the book has resynced
    trades_before = page.locator("#trades [data-trade]").count()
    level = page.locator(f'#book [data-price="{price}"]')

    # alice rests 0.2 contracts on the ask; it shows in the book
    maker = alice.place_order(name, "sell", price=price, amount=200_000)
    t0 = time.monotonic()
    assert maker.status == "open", maker
    expect(level).to_have_count(1, timeout=LIVE_MS)
    book_ms = (time.monotonic() - t0) * 1000
    resting = level.inner_text()  # price and 0.2

    # bob takes 0.1 of it: the trade shows in the trades view, the rest stays in the book
    head = _latest(d)
    taker = bob.place_order(name, "buy", price=price, amount=100_000, time_in_force="IOC")
    t0 = time.monotonic()
    assert taker.status == "filled" and taker.fills[0].maker_order == maker.order_hash, taker
    expect(page.locator("#trades [data-trade]")).to_have_count(trades_before + 1, timeout=LIVE_MS)
    trades_ms = (time.monotonic() - t0) * 1000
    left_ms = max(1.0, LIVE_MS - (time.monotonic() - t0) * 1000)  # the same 2 s from the ack
    expect(level).not_to_have_text(resting, timeout=left_ms)  # 0.1 left at that price
    expect(level).to_have_count(1)
    print(f"live: book {book_ms:.0f} ms, trades {trades_ms:.0f} ms after the acks")
    tab.assert_clean("instrument (live trade)")
    tab.shot("instrument-trade")

    # a block sealed after the trade (the order status does not name its block): sealed, then
    # posted, then final, as the chain view shows it
    block = d.wait("a block after the trade", lambda: (n := _latest(d)) > head and n)
    row = page.locator(f'#chain [data-block="{block}"]')
    tab.open(f"#/chain/{block}")  # keeps that block in view while newer ones arrive
    expect(row).to_have_attribute("data-status", "sealed", timeout=10_000)
    tab.shot("chain-sealed")

    post = d.cli("post-batches", "--once", "--sequencer", d.api, "--l1-rpc", d.l1, "--rollup", d.rollup,
                 "--keystore", str(d.data_dir / "poster-keystore.json"),
                 "--password-file", str(d.data_dir / "poster-password.txt"),
                 "--lock-dir", str(tmp_path))
    assert post.returncode == 0, post.stdout + post.stderr
    expect(row).to_have_attribute("data-status", "posted", timeout=20_000)
    tab.shot("chain-posted")

    l1 = L1Client(d.l1)
    l1.increase_time(61)  # the devnet's challenge window is 60 s
    l1.mine()
    expect(row).to_have_attribute("data-status", "final", timeout=30_000)
    expect(page.locator('#chain [data-status="final"]').first).to_be_visible()
    tab.assert_clean("chain (final)")
    tab.shot("chain-final")

    # the taker's account page too, now that it holds a position
    tab.open(f"#/account/{Account.from_key(d.keys[1]).address}")
    expect(page.locator("#account")).to_contain_text(bob.account_address, timeout=10_000)
    tab.assert_clean("account (after the trade)")
    tab.shot("account-after-trade")


def _latest(d: Devnet) -> int:
    """The newest durable block's number."""
    return int(d.http.get("/v1/blocks/latest").json()["header"]["number"])
