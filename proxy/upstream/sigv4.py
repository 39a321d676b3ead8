"""A Transport layer that signs each attempt with AWS Signature Version 4: botocore's
signer, with the bridge's own AWS credentials from botocore's standard chain
(environment, shared config and credentials files and profiles, web identity / IRSA,
container and instance roles), refreshed as botocore refreshes them.

Only the bridge's credentials sign: a caller's signature never reaches this layer (the
Bedrock endpoint drops it). Resolving and refreshing credentials may wait on the network
(an instance role), so it runs in a thread, never on the event loop.
"""

import asyncio
from dataclasses import replace
from typing import Any

from proxy.errors import BridgeError
from proxy.upstream.answer import Answer
from proxy.upstream.transport import Request, Transport

SIGNED = frozenset({b"authorization", b"x-amz-date", b"x-amz-security-token"})


class NoCredentials(BridgeError):
    status = 500

    def __init__(self, why: str = "none found") -> None:
        super().__init__(
            "the bridge has no AWS credentials to call Bedrock with (environment, profile, "
            f"web identity or instance role): {why}"
        )


class Signing:
    """The inner transport's attempt, signed for `service` in `region`."""

    def __init__(
        self, inner: Transport, region: str, service: str = "bedrock", credentials: Any = None
    ) -> None:
        self.inner = inner
        self._region, self._service = region, service
        self._credentials = credentials  # botocore's; resolved on first use when None
        self._lock = asyncio.Lock()

    def open(self) -> None:
        self.inner.open()

    async def _frozen(self) -> Any:
        import botocore.session  # botocore (8 MB) loads only when a call needs it
        from botocore.exceptions import BotoCoreError

        try:
            if self._credentials is None:
                async with self._lock:
                    if self._credentials is None:
                        session = botocore.session.get_session()
                        self._credentials = await asyncio.to_thread(session.get_credentials)
            if self._credentials is None:
                raise NoCredentials()
            return await asyncio.to_thread(self._credentials.get_frozen_credentials)
        except BotoCoreError as exc:  # a provider of the chain failed (its name, no secret)
            raise NoCredentials(type(exc).__name__) from None

    async def send(self, request: Request) -> Answer:
        assert isinstance(request.content, bytes)  # a signed body is held whole
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = await self._frozen()
        kept = [(n, v) for n, v in request.headers if n.lower() not in SIGNED]
        aws = AWSRequest(
            method=request.method,
            url=request.url,
            headers={n.decode("latin-1"): v.decode("latin-1") for n, v in kept},
            data=request.content,
        )
        SigV4Auth(credentials, self._service, self._region).add_auth(aws)
        added = [
            (name.lower().encode(), value.encode())
            for name, value in aws.headers.items()
            if name.lower().encode() in SIGNED
        ]
        return await self.inner.send(replace(request, headers=[*kept, *added]))

    async def aclose(self) -> None:
        await self.inner.aclose()
