"""The trading core: instruments, EIP-712 messages, oracle marks, margin, matching, the block
state transition and expiry settlement. Pure and deterministic: no I/O, clock or randomness;
time comes in with the block."""

from sequencer.core.book import Book, Resting
from sequencer.core.config import CoreConfig, OracleParams, UnderlyingParams
from sequencer.core.eip712 import (Cancel, CancelAll, DenyL1, Feed, FreezeAccount, Liquidate,
                                   Listing, MmpConfig, UnfreezeAccount,
                                   MmpReset, SessionKey, SetMarginMode, Withdraw, digest, digests,
                                   eip712_types,
                                   hash_struct, order_digest)
from sequencer.core.engine import (AccountView, Engine, ForcedResult, OpenOrderView, OrderResult,
                                   PositionView)
from sequencer.core.instruments import UNIT, Instrument, make_instrument, parse_name
from sequencer.core.margin import Margin, RiskRow, fee, positions_margin, short_margin
from sequencer.core.marks import Marks
from sequencer.core.oracle import OracleState, Price, current_price, twap
from sequencer.core.pricing import Greeks, Mark, black76, interpolate_vol, mark
from sequencer.core.settlement import settle, settlement_price
from sequencer.core.state import (Account, FilledOrder, State, account_leaf, genesis,
                                  positions_hash, state_bytes)
from sequencer.core.transition import (FORCED_NONCE_BASE, MAX_COLLATERAL, BlockContext, apply,
                                       list_instrument, prepare_block)
from sequencer.core.txs import (AuctionEndTx, AuctionStartTx, DenyL1Tx, DepositTx, FillTx,
                                ForcedWithdrawTx, FreezeTx, UnfreezeTx,
                                LiquidateTx, ListTx, MarginModeTx, OracleTx, SessionKeyTx, SettleTx,
                                SignedOrder, TakeoverTx, Tx, WithdrawTx, decode_tx, encode_tx)

__all__ = [
    "FORCED_NONCE_BASE", "MAX_COLLATERAL", "UNIT", "Account", "AccountView", "AuctionEndTx",
    "AuctionStartTx", "Liquidate", "LiquidateTx", "TakeoverTx", "BlockContext", "Book", "Cancel", "CancelAll", "CoreConfig",
    "DepositTx", "Engine", "Feed", "FillTx", "FilledOrder", "ForcedResult", "ForcedWithdrawTx", "Greeks", "Instrument", "ListTx",
    "Listing", "Margin", "MarginModeTx", "Mark", "Marks", "MmpConfig", "MmpReset",
    "OpenOrderView", "OracleParams", "OracleState",
    "OracleTx", "OrderResult", "PositionView", "Price", "Resting", "RiskRow", "SessionKey",
    "SessionKeyTx", "SetMarginMode", "SettleTx", "SignedOrder", "State", "Tx", "UnderlyingParams", "Withdraw",
    "WithdrawTx", "account_leaf", "apply", "black76", "current_price", "decode_tx", "digest",
    "digests", "eip712_types", "encode_tx", "fee", "genesis", "hash_struct", "interpolate_vol",
    "list_instrument", "make_instrument", "mark", "order_digest", "parse_name", "positions_hash",
    "positions_margin", "prepare_block", "settle", "settlement_price", "short_margin",
    "state_bytes", "twap",
    "DenyL1", "DenyL1Tx", "FreezeAccount", "FreezeTx", "UnfreezeAccount", "UnfreezeTx",
]
