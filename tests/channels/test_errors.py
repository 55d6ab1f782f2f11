"""Channel errors are sequencer errors: the HTTP boundary maps each one, none is a 500."""

from __future__ import annotations

import inspect

import channels.errors as ce
from sequencer.api.errors import status_of
from sequencer.errors import OptrollupError

EXPECTED = {
    "InvalidState": 400, "InvalidTrade": 400, "InvalidQuote": 400, "BadSignature": 401,
    "StaleTurn": 409, "DoubleSign": 409, "ChannelExists": 409, "CosignedConflict": 409,
    "DoesNotFollow": 422, "ChannelFinal": 422, "InsufficientBalance": 422,
    "TooManyPositions": 422, "MissingMark": 422, "InsufficientMargin": 422,
    "OutsideQuote": 422, "CannotSettle": 422, "ChannelStoreError": 503,
    "ChannelStoreLocked": 503,
}


def test_every_channel_error_has_its_status() -> None:
    classes = {n: c for n, c in inspect.getmembers(ce, inspect.isclass)
               if issubclass(c, ce.ChannelError) and c is not ce.ChannelError}
    assert set(classes) == set(EXPECTED)
    for name, cls in classes.items():
        exc = cls("x", side="a") if cls is ce.InsufficientMargin else cls("x")
        assert isinstance(exc, OptrollupError) and isinstance(exc, ce.ChannelError)
        assert status_of(exc) == EXPECTED[name], name
        assert exc.code and exc.code == exc.code.lower()


def test_code_override_keeps_the_class() -> None:
    e = ce.InvalidState("bad", code="wrong_channel")
    assert e.code == "wrong_channel" and status_of(e) == 400
    assert ce.InvalidState.code == "invalid_channel_state"
