"""The bridge's own errors. Each knows its HTTP status and Anthropic error type.

    BridgeError
     ├── InvalidRequest        400 invalid_request_error   (bad body, bad prompt, unsupported)
     ├── Unauthorized          401 authentication_error    (not on the client allow-list)
     ├── NotFound              404 not_found_error         (a path the bridge serves elsewhere)
     ├── RequestTooLarge       413 request_too_large       (body over the configured limit)
     ├── UpstreamUnreachable   502 api_error               (connect failed)
     ├── BadUpstreamResponse   502 api_error               (a 200 the bridge cannot read)
     ├── UpstreamTimeout       504 timeout_error           (no answer in time)
     ├── Overloaded            529 overloaded_error        (bodies in flight at their budget)
     └── ShuttingDown          503 overloaded_error        (cut at the drain deadline)

Bridge-made 4xx tell SDKs not to retry (`x-should-retry: false`); 5xx say nothing,
so SDKs retry as they would have against the old API; a call cut by shutdown says
`x-should-retry: true` (another replica will answer it).
"""

from typing import Literal, cast, get_args

# The Anthropic error types: every `error_type` the bridge logs or answers is one of these.
ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
]
ERROR_TYPE_NAMES: frozenset[str] = frozenset(get_args(ErrorType))

ERROR_TYPES: dict[int, ErrorType] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


# What a client is told of a bug of ours (an api_error); the log has the traceback.
INTERNAL_ERROR = "internal error in the bridge; see its log"


def as_error_type(name: str) -> ErrorType:
    """`name` if it is one of the error types, else `api_error`."""
    return cast(ErrorType, name) if name in ERROR_TYPE_NAMES else "api_error"


def error_type_for_status(status: int) -> ErrorType:
    """The Anthropic error type for a status; `api_error` where the table is silent."""
    return ERROR_TYPES.get(status, "api_error")


class BridgeError(Exception):
    status = 500
    error_type: ErrorType = "api_error"
    retry_after: int | None = None  # seconds, sent as `retry-after` when set

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.status >= 500

    @property
    def retry_advice(self) -> bytes | None:
        """The x-should-retry header's value; None leaves it to the status."""
        return None if self.retryable else b"false"


class InvalidRequest(BridgeError):
    status = 400
    error_type: ErrorType = "invalid_request_error"


class Unauthorized(BridgeError):
    status = 401
    error_type: ErrorType = "authentication_error"


class NotFound(BridgeError):
    status = 404
    error_type: ErrorType = "not_found_error"


class RequestTooLarge(BridgeError):
    status = 413
    error_type: ErrorType = "request_too_large"


class UpstreamUnreachable(BridgeError):
    status = 502
    error_type: ErrorType = "api_error"


class BadUpstreamResponse(BridgeError):
    status = 502
    error_type: ErrorType = "api_error"


class UpstreamTimeout(BridgeError):
    status = 504
    error_type: ErrorType = "timeout_error"


class ShuttingDown(BridgeError):
    """The bridge stopped the call: it was still running at the drain deadline."""

    status = 503
    error_type: ErrorType = "overloaded_error"

    def __init__(self) -> None:
        super().__init__("the bridge is shutting down; retry the request")

    @property
    def retry_advice(self) -> bytes | None:
        return b"true"


class Overloaded(BridgeError):
    """Too many request bytes in memory at once (max_inflight_bytes): try again shortly."""

    status = 529
    error_type: ErrorType = "overloaded_error"
    retry_after: int | None = 1  # seconds: a body's bytes are held for about one call
