"""The peer protocol, client side: what this party's service asks the other party's service.

    GET  {peer}/v1/identity                      -> {account, signer, chainId, rollup}
    POST {peer}/v1/channels/proposals            {channelOpen, signature, initialStateSignature,
                                                  serviceUrl} -> {signature, initialStateSignature}
    POST {peer}/v1/channels/{id}/states          {channelState, signature, trade | null}
                                                  -> {signature}
    GET  {peer}/v1/channels/{id}/state           (signed headers of this party) -> the latest
                                                  co-signed state the peer holds

Outcomes: an answer (the decoded JSON); a refusal, the peer's 4xx as the SDK's typed
`ApiError` (status and code kept, message prefixed "peer refused: "); or `PeerDown` when there
is no answer or a 5xx: then the outcome is unknown (the peer may have signed and recorded the
state), which the caller settles by asking the peer for its latest state (`latest`).
"""

from __future__ import annotations

from typing import Any

from channels._auth import AuthHeaders
from channels._http import HttpPool, Response
from optrollup_client._errors import ApiError, TransportError, error_from_answer
from sequencer.errors import InvalidSignature, Rejected, Unavailable

__all__ = ["PeerClient", "PeerDown"]


class PeerDown(Unavailable):
    """No answer from the peer's service (or a 5xx): the outcome of the request is unknown."""

    code = "peer_unavailable"


class PeerClient:
    def __init__(self, pool: HttpPool, auth: AuthHeaders) -> None:
        self.pool, self.auth = pool, auth

    async def _call(self, method: str, url: str, body: Any = None, *, auth: bool = False) -> Any:
        try:
            r: Response = await self.pool.json(method, url, body, self.auth() if auth else None)
        except TransportError as exc:
            raise PeerDown(f"peer service {url} did not answer: {exc.message}") from None
        if r.status >= 500:
            raise PeerDown(f"peer service {url} answered HTTP {r.status}: {r.content[:300]!r}")
        try:
            answer = r.json()
        except ValueError:
            raise PeerDown(f"peer service {url} answered HTTP {r.status} with a body that is not "
                           "JSON") from None
        if r.status >= 400:
            err: ApiError = error_from_answer(r.status, answer, r.headers)
            if isinstance(err, InvalidSignature):
                # the peer refuses our signature: never the owner's fault; a 401 to the owner
                # would read as its own auth failing
                raise Rejected(f"peer refused our signature [{err.code}]: {err.message}",
                               code="peer_refused_signature")
            err.args = (f"peer refused: {err.message}", *err.args[1:])
            raise err
        return answer

    async def identity(self, peer: str) -> Any:
        return await self._call("GET", f"{peer.rstrip('/')}/v1/identity")

    async def propose_open(self, peer: str, body: dict[str, Any]) -> Any:
        return await self._call("POST", f"{peer.rstrip('/')}/v1/channels/proposals", body)

    async def propose_state(self, peer: str, channel_id: str, body: dict[str, Any]) -> Any:
        return await self._call("POST", f"{peer.rstrip('/')}/v1/channels/{channel_id}/states", body)

    async def latest(self, peer: str, channel_id: str) -> Any:
        return await self._call("GET", f"{peer.rstrip('/')}/v1/channels/{channel_id}/state", auth=True)
