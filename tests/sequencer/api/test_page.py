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
from sequencer.api.page import PAGE_DIR
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
            "/page/smile.js", "/page/fmt.js"} <= set(got)
    for url, ctype in got.items():
        want = {"js": "text/javascript", "css": "text/css"}[url.rsplit(".", 1)[1]]
        assert ctype.startswith(want), (url, ctype)
    assert client.get("/page/nope.js").status_code == 404


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
                           capture_output=True, timeout=30)
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
