"""The AWS event-stream framing (`application/vnd.amazon.eventstream`), the encoder:
what Bedrock's `invoke-with-response-stream` answers in, and what `botocore`'s
`EventStreamBuffer` (and the anthropic SDK's `AWSEventStreamDecoder` on top of it) reads.

A message is

    total length (4 bytes, big-endian; all of the message)
    headers length (4)
    prelude CRC32 (4; over the 8 bytes before it)
    headers: each a name length (1), the name, a value type (1; 7: string),
             a value length (2) and the value
    payload
    message CRC32 (4; over everything before it)

No library the bridge can use writes it (awscrt's event stream is an RPC client), and it
is this small; the tests read every message back with botocore's decoder, at every split.
"""

import struct
import zlib

_STRING = 7


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack(">B", len(raw_name))
        + raw_name
        + struct.pack(">BH", _STRING, len(raw_value))
        + raw_value
    )


def message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string `headers` and `payload`."""
    raw_headers = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: bytes) -> bytes:
    """An event message (`:message-type: event`) with a JSON payload."""
    return message(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        payload,
    )


def exception(exception_type: str, payload: bytes) -> bytes:
    """An exception message (`:message-type: exception`): a modelled error of the stream,
    raised by botocore as an `EventStreamError` with `exception_type` as its code."""
    return message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        payload,
    )
