"""Liquidation through the SDK (sync and async) against a real uvicorn over a real node with an
account in liquidation: the auctions list, partial and full takes, client-side argument checks
and typed errors."""

from __future__ import annotations

import asyncio
import json

import pytest
from eth_account import Account as EthAccount

from cext import to_checksum
from sequencer.api.app import create_app
from sequencer.cli import main
from optrollup_client import (
    AsyncClient,
    Auction,
    Client,
    ClientError,
    Liquidations,
    LiquidationTake,
    RejectedError,
)
from sequencer.client import cli as client_cli
from sequencer.client.liquidator import Liquidator, Policy, max_price, wants
from tests.sequencer.client.live import Live, serve
from tests.sequencer.node.kit import CALL, Kit
from tests.sequencer.node.test_liquidation import LIQ, POOR, in_auction

U = 10**6


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    k = in_auction(Kit(tmp_path_factory.mktemp("liq"), block_time=10**9))
    app = create_app(k.node, tick_seconds=3600, monotonic=k.clock)
    with serve(app) as url:
        yield Live(k, app, url)


def test_sync_then_async_takes(live) -> None:
    poor = to_checksum(POOR.address)
    with Client(live.url, private_key=LIQ.hex, clock=live.clock) as c:
        got = c.liquidations()
        assert isinstance(got, Liquidations) and got.insurance_fund.enabled
        [a] = got.auctions
        assert isinstance(a, Auction) and a.account == poor and a.positions == {CALL: -2 * U}
        assert a.discount_ppm == 50_000 and 0 < a.equity < a.maintenance_margin
        with pytest.raises(ClientError) as e:
            c.liquidate(poor, 0, 10**12)
        assert e.value.code == "invalid_argument"
        with pytest.raises(RejectedError) as r:
            c.liquidate(poor, 500_000, -1)
        assert r.value.code == "price_above_max"
        take = c.liquidate(poor, 500_000, a.price_of(500_000) + 10)
        assert isinstance(take, LiquidationTake) and take.positions == {CALL: -U}
        assert not take.auction_ended and take.price <= a.price_of(500_000) + 1

    async def rest() -> LiquidationTake:
        async with AsyncClient(live.url, private_key=LIQ.hex, clock=live.clock) as ac:
            [left] = (await ac.liquidations()).auctions
            assert left.positions == {CALL: -U}
            return await ac.liquidate(poor, 1_000_000, 10**12)

    take = asyncio.run(rest())
    assert take.auction_ended and take.fraction_ppm == 1_000_000
    with Client(live.url) as anon:
        assert anon.liquidations().auctions == []


# -- the reference liquidator (optrollup liquidator) ------------------------------------------

def auction(**kw) -> Auction:
    base = dict(account="0x" + "ab" * 20, started_at=0, elapsed=0, discount_ppm=100_000,
                collateral=500 * U, equity=400 * U, initial_margin=900 * U,
                maintenance_margin=450 * U, price=360 * U, insolvent=False, positions={CALL: -U})
    base.update(kw)
    return Auction(**base)


def test_wants_the_discount_to_pay_for_the_risk() -> None:
    p = Policy(risk_share_ppm=100_000, min_discount_ppm=50_000)
    assert not wants(auction(), p)                            # edge 40 < 10% of MM 450
    assert wants(auction(price=350 * U), p)                   # edge 50 >= 45
    assert not wants(auction(discount_ppm=40_000), p)         # below the minimum discount
    assert not wants(auction(equity=None, price=None), p)     # stale oracle
    assert not wants(auction(equity=-5, price=-5, insolvent=True), p)  # the fund's
    assert max_price(auction(), 500_000, p) == 180 * U + 180_000  # quote + 0.1%


def test_liquidator_halves_the_fraction_while_its_margin_says_no() -> None:
    taken = []

    class Fake:
        def liquidations(self) -> Liquidations:
            from optrollup_client import InsuranceFund
            return Liquidations(0, [auction()], InsuranceFund("0x", 0, 0, 0, True))

        def liquidate(self, account: str, f: int, limit: int) -> LiquidationTake:
            if f > 250_000:
                raise RejectedError("equity below initial margin", code="insufficient_margin",
                                    status=422)
            taken.append((f, limit))
            return LiquidationTake("0x", account, f, 100_000, 0, 0, 0, {}, False, 1)

    out = Liquidator(Fake(), Policy(risk_share_ppm=10_000)).run_once()  # type: ignore[arg-type]
    assert [o.fraction_ppm for o in out] == [1_000_000, 500_000, 250_000]
    assert [o.code for o in out] == ["insufficient_margin"] * 2 + [None]
    assert taken == [(250_000, 90 * U + 90_000)]


@pytest.fixture(scope="module")
def liq_keyfile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("liqkeys")
    (d / "pw").write_text("pw\n")
    (d / "k.json").write_text(json.dumps(EthAccount.encrypt(LIQ.hex, "pw", kdf="pbkdf2",
                                                            iterations=2)))
    return {"file": str(d / "k.json"), "pw": str(d / "pw")}


def test_cli_waits_for_the_discount_then_takes(tmp_path_factory, liq_keyfile, capsys,
                                               monkeypatch) -> None:
    k = in_auction(Kit(tmp_path_factory.mktemp("liqcli"), block_time=10**9))
    app = create_app(k.node, tick_seconds=3600, monotonic=k.clock)
    monkeypatch.setattr(client_cli, "CLOCK", k.clock)
    with serve(app) as url:
        conn = ["liquidator", "--sequencer", url, "--keystore", liq_keyfile["file"],
                "--password-file", liq_keyfile["pw"], "--once", "--json"]
        assert main(conn) == 0
        assert capsys.readouterr().out == ""  # 5% of equity does not cover 10% of its MM
        assert main([*conn, "--risk-share-ppm", "10000"]) == 0
        [line] = capsys.readouterr().out.splitlines()
        got = json.loads(line)
        assert got["status"] == "taken" and got["fractionPpm"] == 1_000_000 and got["auctionEnded"]
        assert POOR.address not in k.node.core.engine.state.auctions
