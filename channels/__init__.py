"""optrollup state channels (design.md "State channels"): the rules of channel states, this
party's durable store of them, and the errors. The signed messages themselves (ChannelOpen,
ChannelState, digests, JSON) are sequencer.core.channelmsg.

The service (`ChannelService`, `ServiceConfig`, `create_app`) and its owner SDK
(`ChannelClient`) are loaded on first use (they pull in the HTTP stack): `from channels import
ChannelClient` works, `import channels` stays light."""

from typing import Any

from channels._wire import quote_from_json, quote_to_json, trade_from_json, trade_to_json
from channels.errors import (BadSignature, CannotSettle, ChannelError, ChannelExists,
                             ChannelFinal, ChannelStoreError, ChannelStoreLocked,
                             CosignedConflict, DoesNotFollow, DoubleSign, InsufficientBalance,
                             InsufficientMargin, InvalidQuote, InvalidState, InvalidTrade,
                             MissingMark, OutsideQuote, StaleTurn, TooManyPositions)
from channels.rules import (Channel, Quote, QuoteLine, Trade, apply_trade, check_margin,
                            check_quote, check_state, final_state, follows, follows_expected,
                            initial_state, make_channel, margins, payoff, positions_of,
                            settle_expired, verify_signatures, within_quote)
from channels.store import ChannelStore, Cosigned, Signed

__all__ = [
    "BadSignature", "CannotSettle", "Channel", "ChannelError", "ChannelExists", "ChannelFinal",
    "ChannelStore", "ChannelStoreError", "ChannelStoreLocked", "Cosigned", "CosignedConflict",
    "DoesNotFollow", "DoubleSign", "InsufficientBalance", "InsufficientMargin", "InvalidQuote",
    "InvalidState", "InvalidTrade", "MissingMark", "OutsideQuote", "Quote", "QuoteLine", "Signed",
    "StaleTurn", "TooManyPositions", "Trade", "apply_trade", "check_margin", "check_quote",
    "check_state", "final_state", "follows", "follows_expected", "initial_state",
    "make_channel", "margins", "payoff", "positions_of", "quote_from_json", "quote_to_json",
    "settle_expired", "trade_from_json", "trade_to_json", "verify_signatures", "within_quote",
    "ChannelClient", "ChannelService", "ServiceConfig", "create_app",
]

_LAZY = {"ChannelClient": "channels.client", "ChannelService": "channels.service",
         "ServiceConfig": "channels.service", "create_app": "channels._app"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'channels' has no attribute {name!r}")
