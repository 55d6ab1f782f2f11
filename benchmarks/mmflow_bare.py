"""The bare FastAPI + pydantic ceiling of benchmarks/test_mm_flow.py: the node's write routes with
the same bodies, validated by pydantic models of the same shape, answered with results of the
node's shape, and nothing else (no signatures, no engine, no log, no middlewares).

    .venv/bin/python -m uvicorn benchmarks.mmflow_bare:app --port P --log-level warning --no-access-log

uvicorn's defaults, as `optrollup serve` (one worker, h11 here: httptools is not installed).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from sequencer.api.telemetry import telemetry_options

app = FastAPI(title="bare ceiling", **telemetry_options())  # as the node's app
HASH = "0x" + "ab" * 32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderMsg(_Strict):
    account: str
    instrument: str
    isBuy: bool
    price: int | str
    amount: int | str
    nonce: int | str
    expiry: int
    timeInForce: int
    postOnly: bool
    reduceOnly: bool


class SignedOrder(_Strict):
    order: OrderMsg
    signature: str


class CancelMsg(_Strict):
    account: str
    orderHash: str


class SignedCancel(_Strict):
    cancel: CancelMsg
    signature: str


class Pair(_Strict):
    cancel: SignedCancel
    order: SignedOrder


class Quotes(_Strict):
    quotes: list[Pair]


class Batch(_Strict):
    orders: list[SignedOrder]


def _result(o: OrderMsg) -> dict[str, Any]:
    return {"orderHash": HASH, "status": "open", "filledAmount": "0", "fills": []}


@app.get("/health")
async def health() -> Any:
    return {"status": "ok"}


@app.post("/v1/orders")
async def order(body: SignedOrder) -> Any:
    return _result(body.order)


@app.post("/v1/orders/batch")
async def batch(body: Batch) -> Any:
    return {"results": [_result(x.order) for x in body.orders]}


@app.post("/v1/quotes")
async def quotes(body: Quotes) -> Any:
    return {"results": [_result(p.order.order) for p in body.quotes]}
