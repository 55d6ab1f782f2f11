"""The node's page (sequencer/api/page.py, sequencer/api/page/): served at / with its assets,
offline (no other origin), its ES modules parse; and GET /v1/blocks/{n}/status."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from sequencer.api.app import create_app
from sequencer.api.page import PAGE_DIR, VENDOR_ENV, VENDOR_FILES, vendor_dir
from sequencer.node.l1follower import Batch, L1View
from tests.sequencer.node.kit import USERS, Kit

IMPORT = re.compile(r"""(?:import|from)\s*["'](\./[\w./-]+)["']""")


@pytest.fixture
def client(tmp_path: Path):
    k = Kit(tmp_path)
    app = create_app(k.node, tick_seconds=3600, monotonic=k.clock)
    with TestClient(app) as c:
        c.kit = k
        yield c
        k.node.l1 = None


def assets(client: TestClient) -> dict[str, str]:
    """Every asset the page loads: what index.html references, then the modules' imports."""
    html = client.get("/").text
    todo = re.findall(r"""(?:src|href)="(/page/[^"]+)\"""", html)
    seen: dict[str, str] = {}
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code)
        seen[url] = r.headers["content-type"]
        if url.endswith(".js"):
            todo += [url.rsplit("/", 1)[0] + "/" + m[2:] for m in IMPORT.findall(r.text)]
    return seen


def test_index_is_served_at_root(client) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/page/app.js">' in r.text
    assert "/page/style.css" in r.text


def test_every_asset_is_served_with_its_type(client) -> None:
    got = assets(client)
    assert {"/page/app.js", "/page/style.css", "/page/api.js", "/page/book.js",
            "/page/fmt.js", "/page/charts.js", "/page/crypto.js", "/page/eip712.js",
            "/page/wallet.js", "/page/markets.js", "/page/instrument.js", "/page/chain.js",
            "/page/account.js", "/page/channels.js", "/page/liquidations.js"} <= set(got)
    assert set(got) == {"/page/" + f.name for f in PAGE_DIR.iterdir() if f.suffix in (".js", ".css")}
    for url, ctype in got.items():
        want = {"js": "text/javascript", "css": "text/css"}[url.rsplit(".", 1)[1]]
        assert ctype.startswith(want), (url, ctype)
    assert client.get("/page/nope.js").status_code == 404


UPLOT = "1.6.32"  # package.json pins it exactly


def test_uplot_is_pinned_as_a_runtime_dependency() -> None:
    import json
    repo = Path(__file__).resolve().parents[3]
    pkg = json.loads((repo / "package.json").read_text())
    assert pkg["dependencies"]["uplot"] == UPLOT
    lock = json.loads((repo / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"]["uplot"] == UPLOT
    assert lock["packages"]["node_modules/uplot"]["version"] == UPLOT
    assert vendor_dir() == repo / "node_modules"


@pytest.mark.skipif(not (vendor_dir() / VENDOR_FILES["uPlot.esm.js"]).is_file(),
                    reason="uplot is not installed in node_modules (npm ci)")
def test_vendor_files_are_served_from_node_modules(client) -> None:
    """uPlot, from node_modules (never copied into the page's folder), with its content types;
    the charts import it, as the stylesheet, from these URLs."""
    js = client.get("/page/vendor/uPlot.esm.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert f"(v{UPLOT})" in js.text[:400] and "export { uPlot as default }" in js.text
    css = client.get("/page/vendor/uPlot.min.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".uplot" in css.text
    assert client.get("/page/vendor/uPlot.cjs.js").status_code == 404  # only the listed files
    assert client.get("/page/vendor/..%2Fpackage.json").status_code == 404
    charts = (PAGE_DIR / "charts.js").read_text()
    assert '"/page/vendor/"' in charts and "uPlot.esm.js" in charts and "uPlot.min.css" in charts
    assert not any(f.name.lower().startswith("uplot") for f in PAGE_DIR.iterdir())


def test_vendor_files_missing_404_and_the_charts_degrade(tmp_path: Path, monkeypatch) -> None:
    """OPTROLLUP_PAGE_VENDOR names the node_modules directory; an empty one: the vendor URLs
    404 and the page's own files are still served (the browser side of this, a failed
    import(), is in tests/e2e/test_page_browser.py)."""
    empty = tmp_path / "node_modules"
    empty.mkdir()
    monkeypatch.setenv(VENDOR_ENV, str(empty))
    assert vendor_dir() == empty
    k = Kit(tmp_path / "kit")
    with TestClient(create_app(k.node, tick_seconds=3600, monotonic=k.clock)) as c:
        for name in VENDOR_FILES:
            r = c.get("/page/vendor/" + name)
            assert r.status_code == 404 and "npm ci" in r.json()["error"]["message"], r.text
        assert set(assets(c)) == {"/page/" + f.name for f in PAGE_DIR.iterdir() if f.suffix in (".js", ".css")}
    charts = (PAGE_DIR / "charts.js").read_text()
    assert "run `npm ci`" in charts  # the note shown in place of each chart


def test_page_works_offline() -> None:
    """No CDN, no other origin: every URL in the page's files is relative to the node."""
    for f in PAGE_DIR.iterdir():
        text = f.read_text().replace('"http://www.w3.org/2000/svg"', "")  # a name, not a fetch
        assert not re.search(r"""["'(]\s*(https?:)?//""", text), f.name


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_modules_parse() -> None:
    # --input-type=module on stdin: `node --check file.js` exits 0 on a broken ES module (Node 20)
    for f in sorted(PAGE_DIR.glob("*.js")):
        r = subprocess.run(["node", "--input-type=module", "--check"], stdin=f.open("rb"),
                           capture_output=True, timeout=30, check=False)
        assert r.returncode == 0, (f.name, r.stderr.decode())


def test_api_and_docs_unaffected(client) -> None:
    assert client.get("/v1/info").status_code == 200
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/blocks/{number}/status" in paths and "/" not in paths
    r = client.post("/v1/orders", json={})  # the FastWrites front still answers the writes
    assert r.status_code == 400 and "error" in r.json()
    assert client.get("/v1/nope").json()["error"]["code"] == "not_found"


def test_block_status_sealed_posted_final(client) -> None:
    k = client.kit
    node = k.node
    for _ in range(4):  # blocks 1..4, one deposit each (a block is sealed only if it has txs)
        k.fund(USERS[0], 10**6)
        k.clock.t += 2
        node.seal().result(timeout=10)
    head = node.durable_head()
    assert head >= 4
    # no L1 follower: every block is sealed
    assert client.get("/v1/blocks/1/status").json() == {"block": 1, "status": "sealed", "batch": None}
    # genesis: the Rollup was deployed with its state root, so it is final without a batch
    assert client.get("/v1/blocks/0/status").json() == {"block": 0, "status": "final", "batch": None}
    # the follower's view: batch 0 = blocks 0..1 (final), batch 1 = blocks 2..3 (posted)
    view = L1View(head=100, batches=[Batch(0, 0, 1, (), 10), Batch(1, 2, 3, (), 20)], final_count=1)
    node.l1 = SimpleNamespace(view=view)
    assert client.get("/v1/blocks/1/status").json() == {"block": 1, "status": "final", "batch": 0}
    assert client.get("/v1/blocks/3/status").json() == {"block": 3, "status": "posted", "batch": 1}
    view.final_count = 2
    assert client.get("/v1/blocks/2/status").json()["status"] == "final"
    assert client.get(f"/v1/blocks/{head}/status").json()["status"] == "sealed"  # not in a batch
    r = client.get(f"/v1/blocks/{head + 1}/status")
    assert r.status_code == 404 and r.json()["error"]["code"] == "block_not_found"
    assert client.get("/v1/blocks/-1/status").json()["error"]["code"] == "invalid_number"


def test_channels_list(client) -> None:
    from sequencer.core.channelmsg import ChannelOpen, open_digest, open_to_json
    from tests.sequencer.core.core_world import Key

    k = client.kit
    a, b, c = USERS[0], USERS[1], USERS[2]
    for u in (a, b, c):
        k.fund(u, 10_000 * 10**6)
    assert client.get("/v1/channels").json() == {"channels": []}
    dom = k.cfg.genesis.config.domain
    made = []
    for i, (x, y) in enumerate([(a, b), (b, c)]):
        k.clock.t += 10
        msg = ChannelOpen(x.address, y.address, Key(900 + i).address, Key(950 + i).address,
                          100 * 10**6, 200 * 10**6, i, 600)
        d = open_digest(dom, msg)
        r = client.post("/v1/channels", json={"channelOpen": open_to_json(msg),
                                              "signatures": ["0x" + x.sign(d).hex(), "0x" + y.sign(d).hex()]})
        assert r.status_code == 200, r.text
        made.append(r.json())
    got = client.get("/v1/channels").json()["channels"]
    assert [ch["channelId"] for ch in got] == [made[1]["channelId"], made[0]["channelId"]]  # newest first
    assert got[1] == client.get(f"/v1/channels/{made[0]['channelId']}").json()
    acct = made[0]["a"]
    assert [ch["channelId"] for ch in client.get(f"/v1/channels?account={acct}").json()["channels"]] \
        == [made[0]["channelId"]]
    signer = made[1]["signerB"]
    assert len(client.get(f"/v1/channels?account={signer}").json()["channels"]) == 1
    assert len(client.get("/v1/channels?status=open&limit=1").json()["channels"]) == 1
    assert client.get("/v1/channels?status=closed").json() == {"channels": []}
    assert client.get("/v1/channels?status=nope").json()["error"]["code"] == "invalid_status"
    assert client.get("/v1/channels?account=0x12").status_code == 400
    assert "/v1/channels" in client.get("/openapi.json").json()["paths"]


def test_solvency(client) -> None:
    from sequencer.l1 import L1Unavailable

    k = client.kit
    k.fund(USERS[0], 5 * 10**6)
    k.fund(USERS[1], 7 * 10**6)
    got = client.get("/v1/solvency").json()
    assert got["collateralTotal"] == str(12 * 10**6) and got["shortfall"] == "0"
    assert got["owed"] == str(12 * 10**6) and got["l1"] is None
    assert got["l1MessageCursor"] == 2 and got["insuranceFund"]["balance"] == "0"
    assert got["block"] == k.node.durable_head()

    bridge, token = "0x" + "b1" * 20, "0x" + "70" * 20
    calls = []

    class FakeL1Client:
        def __init__(self, balance: int | None) -> None:
            self.balance = balance

        def call(self, to: str, data: bytes, **_: object) -> bytes:
            calls.append((to.lower(), data.hex()))
            if self.balance is None:
                raise L1Unavailable("L1 is down")
            return self.balance.to_bytes(32, "big")

    settings = SimpleNamespace(bridge=bridge, collateral_token=token)
    k.node.l1 = SimpleNamespace(view=L1View(), client=FakeL1Client(20 * 10**6), settings=settings)
    l1 = client.get("/v1/solvency").json()["l1"]
    assert l1["bridgeBalance"] == str(20 * 10**6) and l1["covered"] is True and l1["error"] is None
    assert l1["bridge"].lower() == bridge and l1["collateralToken"].lower() == token
    assert calls == [(token, "70a08231" + "00" * 12 + "b1" * 20)]
    client.get("/v1/solvency")  # cached: L1 is read at most every few seconds
    assert len(calls) == 1
    page_solvency = client.app.state.solvency  # drop its cache: L1 answers too little, then not at all
    page_solvency.cached = None
    k.node.l1.client.balance = 11 * 10**6
    assert client.get("/v1/solvency").json()["l1"]["covered"] is False
    page_solvency.cached = None
    k.node.l1.client.balance = None
    l1 = client.get("/v1/solvency").json()["l1"]
    assert l1["bridgeBalance"] is None and l1["covered"] is None and "L1 is down" in l1["error"]


def test_account_withdrawals(client) -> None:
    from sequencer.core.eip712 import Withdraw

    k = client.kit
    u = USERS[0]
    addr = "0x" + u.address.hex()
    assert client.get(f"/v1/accounts/{addr}/withdrawals").json() == {"withdrawals": []}
    k.fund(u, 10 * 10**6)
    for n in range(3):
        w = Withdraw(u.address, USERS[1].address, (n + 1) * 10**6, n)
        assert not isinstance(k.run([(w, k.sign(u, w))])[0], Exception)
    k.clock.t += 2
    k.node.seal().result(timeout=10)
    got = client.get(f"/v1/accounts/{addr}/withdrawals").json()["withdrawals"]
    assert [w["nonce"] for w in got] == ["2", "1", "0"]  # newest first
    assert got[2] == client.get(f"/v1/withdrawals/{addr}/0").json()
    assert got[0]["status"] == "pending" and got[0]["amount"] == str(3 * 10**6)
    assert [w["nonce"] for w in client.get(f"/v1/accounts/{addr}/withdrawals?limit=1").json()["withdrawals"]] == ["2"]
    assert client.get("/v1/accounts/0x12/withdrawals").status_code == 400
