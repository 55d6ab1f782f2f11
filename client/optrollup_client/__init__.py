"""optrollup-client: the light SDK of optrollup (pure Python; httpx + eth-account, and
websockets for the stream with the `stream` extra). `Client` (sync) and `AsyncClient` (asyncio)
for the HTTP API and the WebSocket stream, typed results and typed errors (all `OptrollupError`).

    from optrollup_client import Client
    with Client("http://127.0.0.1:8080", private_key="0x...") as c:
        ack = c.place_order("ETH-27DEC26-3000-C", "buy", price=100_000_000, amount=10_000)

Units: `price` USDC base units (× 10^6) per contract; `amount` contracts × 10^6.
"""

__version__ = "0.1.0"

from optrollup_client._client import DEFAULT_ORDER_TTL, ORDER_ENTRY_ROUTES, AsyncClient, Client
from optrollup_client._compliance import ComplianceState
from optrollup_client._errors import (ApiError, BadRequestError, ClientError, Conflict, ConflictError,
                                     Forbidden, ForbiddenError, InvalidRequest, InvalidSignature,
                                     NotFound, NotFoundError, OptrollupError, PayloadTooLarge,
                                     PayloadTooLargeError, RateLimited, RateLimitedError, Rejected,
                                     RejectedError, ServerError, StreamClosed, StreamGap,
                                     TransportError, UnauthorizedError, Unavailable, UnavailableError)
from optrollup_client._l1 import Deposit, L1Error, L1Wallet, Receipt
from optrollup_client._liquidation import Auction, InsuranceFund, Liquidations, LiquidationTake
from optrollup_client._mmp import MmpConfigInfo, MmpFreeze, MmpPair, MmpResetAck, MmpState
from optrollup_client._signing import Signer
from optrollup_client._stream import HAVE_WEBSOCKETS, AsyncStream, Stream
from optrollup_client._types import (Account, Block, BlockHeader, Book, CancelResult, Fill, Greeks, Info,
                                    Instrument, L1Message, Level, NewOrder, OpenOrder, OrderAck, OrderInfo,
                                    OrderStatus, Position, ScenarioRisk, StreamMessage, TimeInForce,
                                    Trade, Withdrawal, WithdrawalAck)

__all__ = [
    "Account", "ApiError", "AsyncClient", "AsyncStream", "Auction", "BadRequestError", "Block",
    "BlockHeader", "Book", "CancelResult", "Client", "ClientError", "ComplianceState", "Conflict",
    "ConflictError", "DEFAULT_ORDER_TTL", "Deposit", "Fill", "Forbidden", "ForbiddenError", "Greeks",
    "HAVE_WEBSOCKETS", "ORDER_ENTRY_ROUTES", "Info", "Instrument", "InsuranceFund", "InvalidRequest", "InvalidSignature", "L1Error", "L1Message", "L1Wallet",
    "Level", "LiquidationTake", "Liquidations", "MmpConfigInfo", "MmpFreeze", "MmpPair",
    "MmpResetAck", "MmpState", "NewOrder", "NotFound", "NotFoundError", "OpenOrder",
    "OptrollupError", "OrderAck", "OrderInfo", "OrderStatus", "PayloadTooLarge",
    "PayloadTooLargeError", "Position", "Receipt", "RateLimited", "RateLimitedError", "Rejected",
    "RejectedError", "ScenarioRisk", "ServerError", "Signer", "Stream", "StreamClosed", "StreamGap",
    "StreamMessage", "TimeInForce", "Trade", "TransportError", "UnauthorizedError", "Unavailable",
    "UnavailableError", "Withdrawal", "WithdrawalAck", "__version__",
]
