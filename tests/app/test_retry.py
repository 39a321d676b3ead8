"""Retries of upstream calls that failed before any byte reached the client: the pure
policy, then the app with a scripted upstream."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp
from structlog.testing import capture_logs

from proxy.config.settings import Settings
from proxy.edge.app import create_app
from proxy.upstream.retry import RetryBudget, backoff, retry_after, should_retry_status
from tests.fakes.factories import legacy_body, message
from tests.fakes.loopback import loopback, running

V2 = {"anthropic-version": "2023-06-01", "x-api-key": "k"}


def test_budget_spends_its_burst_then_earns_a_share_of_requests() -> None:
    budget = RetryBudget(ratio=0.25, burst=2)
    assert [budget.withdraw() for _ in range(3)] == [True, True, False]
    for _ in range(3):
        budget.deposit()
    assert not budget.withdraw()  # 0.75 of a retry
    budget.deposit()
    assert budget.withdraw()
    for _ in range(100):
        budget.deposit()
    assert budget.tokens == 2  # never more than the burst


@pytest.mark.parametrize(
    ("attempt", "rand", "seconds"),
    [(0, 0.0, 0.0), (0, 0.5, 0.25), (1, 1.0, 1.0), (3, 0.5, 2.0), (10, 1.0, 8.0)],
)
def test_backoff_is_full_jitter_capped(attempt: int, rand: float, seconds: float | None) -> None:
    assert backoff(attempt, rand) == seconds


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "-1"}, None),
        ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_milliseconds_then_seconds(
    headers: dict[str, str], seconds: float | None
) -> None:
    assert retry_after(headers) == seconds


def test_only_overload_statuses_retry_and_the_upstream_can_veto() -> None:
    assert should_retry_status(529, {}) and should_retry_status(503, {})
    assert not should_retry_status(529, {"x-should-retry": "false"})
    assert not any(should_retry_status(s, {}) for s in (400, 429, 500, 502, 504))


def overloaded(status: int = 529, /, **headers: str) -> httpx.Response:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    return httpx.Response(status, json=body, headers={"request-id": "req_o", **headers})


class Script:
    """An upstream that gives its scripted answers in turn (an exception is raised),
    then 200s."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        await request.aread()
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return httpx.Response(200, json=message("fine"))


async def post(
    script: Script,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] = V2,
    **settings: Any,
) -> httpx.Response:
    async with loopback(script) as url:
        app = create_app(Settings(upstream_url=url, **settings))
        async with running(app), bridge(app) as c:
            return await c.post("/v1/complete", json=body or legacy_body(), headers=headers)


def bridge(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")


async def test_overloaded_and_unreachable_upstreams_are_retried_within_the_limit() -> None:
    script = Script(
        overloaded(529, **{"retry-after-ms": "1"}),
        httpx.ConnectError("refused"),
        overloaded(503, **{"retry-after": "0"}),
    )
    with capture_logs() as logs:
        response = await post(script, retries=3)
    assert response.status_code == 200 and response.json()["completion"] == " fine"
    assert script.calls == 4
    retries = [line for line in logs if line["event"] == "upstream.retry"]
    assert [(r["attempt"], r["after_status"], r["after_error"]) for r in retries] == [
        (1, 529, None),
        (2, None, "upstream connection lost"),  # dropped before the answer
        (3, 503, None),
    ]
    assert [r["delay_s"] for r in retries][::2] == [0.001, 0.0]


async def test_past_the_limit_the_last_upstream_answer_is_relayed() -> None:
    script = Script(*[overloaded(**{"retry-after-ms": "1"}) for _ in range(3)])
    response = await post(script, retries=2)
    assert script.calls == 3
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"
    assert response.headers["retry-after-ms"] == "1"


@pytest.mark.parametrize(
    ("answer", "settings"),
    [
        (overloaded(), {}),  # retries are off by default
        (overloaded(**{"x-should-retry": "false"}), {"retries": 2}),
        (overloaded(**{"retry-after": "60"}), {"retries": 2}),  # longer than retry_max_wait
        (overloaded(429, **{"retry-after": "0"}), {"retries": 2}),
        (overloaded(500, **{"retry-after": "0"}), {"retries": 2}),
        # silent: the request may be running
        (httpx.ReadTimeout("slow"), {"retries": 2, "first_byte_timeout": 0.2}),
    ],
)
async def test_what_is_not_retried(
    answer: httpx.Response | Exception, settings: dict[str, Any]
) -> None:
    script = Script(answer)
    response = await post(script, **settings)
    assert script.calls == 1
    assert response.status_code == getattr(answer, "status_code", 504)


async def test_the_budget_stops_retries_once_spent() -> None:
    """An upstream overloaded for good: with no budget earned (ratio 0), only the
    initial burst of ten retries is spent, then requests are tried once."""
    script = Script(*[overloaded(**{"retry-after": "0"}) for _ in range(100)])
    async with loopback(script) as url:
        app = create_app(Settings(upstream_url=url, retries=1, retry_budget=0.0))
        async with running(app), bridge(app) as c:
            for _ in range(12):
                response = await c.post("/v1/complete", json=legacy_body(), headers=V2)
                assert response.status_code == 529
    assert script.calls == 10 * 2 + 2 * 1


async def test_a_streamed_passthrough_body_is_never_sent_twice() -> None:
    """A pass-through body read as it arrives cannot be replayed: no retry."""
    script = Script(overloaded(**{"retry-after": "0"}))

    async def body() -> AsyncIterator[bytes]:
        yield b'{"model": "x"}'

    async with loopback(script) as url:
        app = create_app(Settings(upstream_url=url, retries=2))
        async with running(app), bridge(app) as c:
            response = await c.post("/v1/messages", content=body(), headers=V2)
    assert (response.status_code, script.calls) == (529, 1)
