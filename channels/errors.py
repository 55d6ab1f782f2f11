"""Errors of the state-channel service. Every class is also one of sequencer.errors' classes,
so the HTTP boundary maps it by that table (400, 401, 409, 422, 503); `except ChannelError`
catches them all. Codes are stable snake_case and part of the API:

- InvalidState (400): wrong_channel, balances_not_conserved, negative_balance,
  positions_not_sorted, zero_position, invalid_position, too_many_positions, bad_instrument_name
- InvalidTrade (400): invalid_trade, invalid_trade_amount, invalid_trade_price,
  bad_instrument_name, position_overflow
- InvalidQuote (400): bad_instrument_name, duplicate_instrument, invalid_quote, crossed_quote
- BadSignature (401): bad_signature_a, bad_signature_b
- StaleTurn (409): stale_turn (a turn at or below the previous one: a replay)
- DoubleSign (409): turn_already_signed
- ChannelExists (409): channel_exists
- CosignedConflict (409): cosigned_conflict
- DoesNotFollow (422): turn_not_next, balances_mismatch, positions_mismatch, final_mismatch
- ChannelFinal (422): channel_final
- InsufficientBalance (422): insufficient_balance
- TooManyPositions (422): too_many_positions
- MissingMark (422): oracle_stale (the rollup's code for a missing mark)
- InsufficientMargin (422): insufficient_margin (`side` says which)
- OutsideQuote (422): not_quoted, price_outside_quote, amount_exceeds_quote
- CannotSettle (422): nothing_to_settle, settlement_exceeds_balance
- ChannelStoreError (503): channel_store_error; ChannelStoreLocked: data_dir_locked
"""

from __future__ import annotations

from sequencer.errors import (Conflict, InvalidRequest, InvalidSignature, OptrollupError,
                              Rejected, Unavailable)


class ChannelError(OptrollupError):
    """Base of every channel error (never raised itself)."""

    code = "channel_error"


class InvalidState(ChannelError, InvalidRequest):
    """A state that is not valid for its channel whatever came before it."""

    code = "invalid_channel_state"


class InvalidTrade(ChannelError, InvalidRequest):
    """A malformed trade (zero amount, non-canonical instrument)."""

    code = "invalid_trade"


class InvalidQuote(ChannelError, InvalidRequest):
    """A malformed standing quote."""

    code = "invalid_quote"


class BadSignature(ChannelError, InvalidSignature):
    """A state signature that does not recover to the channel's signer of that side."""

    code = "invalid_signature"


class StaleTurn(ChannelError, Conflict):
    """A proposed state whose turnNum is not above the previous one (a replay)."""

    code = "stale_turn"


class DoubleSign(ChannelError, Conflict):
    """This party already signed a different state with that turnNum: it never signs two."""

    code = "turn_already_signed"


class ChannelExists(ChannelError, Conflict):
    """A channel id already recorded with other open parameters."""

    code = "channel_exists"


class CosignedConflict(ChannelError, Conflict):
    """Two different co-signed states with one turnNum: the peer (or its key) equivocated."""

    code = "cosigned_conflict"


class DoesNotFollow(ChannelError, Rejected):
    """A proposed state that is not exactly the previous state with the trade applied."""

    code = "state_does_not_follow"


class ChannelFinal(ChannelError, Rejected):
    """Nothing follows a final state."""

    code = "channel_final"


class InsufficientBalance(ChannelError, Rejected):
    """A payer's channel balance cannot cover the premium."""

    code = "insufficient_balance"


class TooManyPositions(ChannelError, Rejected):
    """The trade would open more positions than a state may hold."""

    code = "too_many_positions"


class MissingMark(ChannelError, Rejected):
    """No mark for an instrument the channel holds: margin cannot be checked."""

    code = "oracle_stale"


class InsufficientMargin(ChannelError, Rejected):
    """A side's balance + value of its channel positions is below its initial margin.
    `side` is "a" or "b"."""

    code = "insufficient_margin"

    def __init__(self, message: str, *, side: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.side = side


class OutsideQuote(ChannelError, Rejected):
    """The counterparty's trade is not within the owner's standing quote."""

    code = "outside_quote"


class CannotSettle(ChannelError, Rejected):
    """Expired positions cannot be settled inside the channel (close on the rollup instead)."""

    code = "cannot_settle"


class ChannelStoreError(ChannelError, Unavailable):
    """The channel store cannot be opened or written."""

    code = "channel_store_error"


class ChannelStoreLocked(ChannelStoreError):
    """Another process holds the store's data dir (LevelDB lock)."""

    code = "data_dir_locked"
