"""The tracing layer, right above the transport: with a traced call running
(proxy/obs/tracing.py), each attempt is a client span, child of the call's server span,
and its W3C `traceparent` (and `tracestate`) replace any the client sent; the span ends
when the answer is closed. With none (tracing off), the request goes on as it is.
"""

from typing import Any

from proxy.obs.tracing import CURRENT
from proxy.upstream.answer import Answer
from proxy.upstream.transport import Request, Transport

PROPAGATED = (b"traceparent", b"tracestate")


class Traced:
    def __init__(self, inner: Transport) -> None:
        self._inner = inner

    def open(self) -> None:
        self._inner.open()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def send(self, request: Request) -> Answer:
        call = CURRENT.get()
        if call is None:
            return await self._inner.send(request)
        from opentelemetry.trace import StatusCode, set_span_in_context

        tracing = call.tracing
        span = tracing.tracer.start_span(
            request.method,
            context=set_span_in_context(call.span),
            kind=tracing.client,
            attributes={"http.request.method": request.method, "url.full": request.url},
        )
        carrier: dict[str, str] = {}
        tracing.propagator.inject(carrier, context=set_span_in_context(span))
        headers = [(n, v) for n, v in request.headers if n.lower() not in PROPAGATED]
        headers += [(name.encode(), value.encode()) for name, value in carrier.items()]
        traced = Request(request.method, request.url, headers, request.content)
        try:
            answer = await self._inner.send(traced)
        except Exception as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(StatusCode.ERROR, str(exc))
            span.end()
            raise
        span.set_attribute("http.response.status_code", answer.status_code)
        if answer.status_code >= 500:
            span.set_status(StatusCode.ERROR)
        return _ending(answer, span)


def _ending(answer: Answer, span: Any) -> Answer:
    """`answer`, whose close also ends `span`."""
    close = answer.close

    async def closed() -> None:
        try:
            await close()
        finally:
            span.end()

    return Answer(answer.status_code, answer.headers, answer.raw_headers, answer.body, closed)
