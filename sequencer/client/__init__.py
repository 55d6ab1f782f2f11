"""optrollup client SDK: `Client` (sync) and `AsyncClient` (asyncio) for the HTTP API and the
WebSocket stream, typed results and typed errors (all `sequencer.errors.OptrollupError`).

    from sequencer.client import Client
    with Client("http://127.0.0.1:8080", private_key="0x...") as c:
        ack = c.place_order("ETH-27DEC26-3000-C", "buy", price=100_000_000, amount=10_000)

Units: `price` USDC base units (× 10^6) per contract; `amount` contracts × 10^6.
"""

from sequencer.client.client import DEFAULT_ORDER_TTL, AsyncClient, Client
from sequencer.client.compliance import ComplianceState
from sequencer.client.errors import (ApiError, BadRequestError, ClientError, ConflictError, NotFoundError,
                                     PayloadTooLargeError, RateLimitedError, RejectedError, ServerError,
                                     StreamClosed, StreamGap, TransportError, UnauthorizedError,
                                     UnavailableError)
from sequencer.client.liquidation import Auction, InsuranceFund, Liquidations, LiquidationTake
from sequencer.client.mmp import MmpConfigInfo, MmpFreeze, MmpPair, MmpResetAck, MmpState
from sequencer.client.signing import Signer
from sequencer.client.stream import AsyncStream, Stream
from sequencer.client.types import (Account, Block, BlockHeader, Book, CancelResult, Fill, Greeks, Info,
                                    Instrument, Level, NewOrder, OpenOrder, OrderAck, OrderInfo,
                                    OrderStatus, Position, ScenarioRisk, StreamMessage, TimeInForce,
                                    Trade, Withdrawal, WithdrawalAck)

__all__ = [
    "DEFAULT_ORDER_TTL", "Account", "ApiError", "AsyncClient", "Auction", "InsuranceFund",
    "LiquidationTake", "Liquidations", "AsyncStream", "BadRequestError", "Block",
    "BlockHeader", "Book", "CancelResult", "Client", "ClientError", "ConflictError", "Fill", "Greeks",
    "Info", "Instrument", "Level", "MmpConfigInfo", "MmpFreeze", "MmpPair", "MmpResetAck", "MmpState",
    "NewOrder", "NotFoundError", "OpenOrder", "OrderAck", "OrderInfo",
    "OrderStatus", "PayloadTooLargeError", "Position", "RateLimitedError", "RejectedError", "ScenarioRisk", "ServerError",
    "Signer", "Stream", "StreamClosed", "StreamGap", "StreamMessage", "TimeInForce", "Trade",
    "TransportError", "UnauthorizedError", "UnavailableError", "Withdrawal", "WithdrawalAck",
    "ComplianceState",
]
