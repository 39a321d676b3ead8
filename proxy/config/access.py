"""Who may call the bridge, and which key it spends upstream.

By default the bridge is transparent: the client's own key goes upstream. A shared
deployment can hold the upstream key itself (`upstream_key`) and admit only callers
with a bridge-issued key (`client_keys`); keys are compared as SHA-256 digests in
constant time, and a keys file may hold the digests instead of the keys.
"""

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from pathlib import Path

from proxy.config.settings import ConfigError, Settings

RawHeaders = list[tuple[bytes, bytes]]

CREDENTIALS = frozenset({b"x-api-key", b"authorization"})


def read_secret(reference: str, environ: Mapping[str, str], key: str) -> str:
    """The text a secret reference (`env:NAME` or `file:PATH`) points at."""
    kind, _, where = reference.partition(":")
    if kind == "env":
        if not environ.get(where, "").strip():
            raise ConfigError(f"{key}: environment variable {where} is not set", (key,))
        return environ[where].strip()
    try:
        return Path(where).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"{key}: cannot read {where} ({reason})", (key,)) from None


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a client sent: `x-api-key`, else `authorization: Bearer`."""
    bearer = None
    for name, value in headers:
        name = name.lower()
        if name == b"x-api-key":
            return value.strip()
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = value[7:].strip()
    return bearer


def _digests(text: str) -> tuple[bytes, ...]:
    """Keys or `sha256:HEX` digests, separated by newlines, commas or spaces;
    lines starting with # are comments."""
    words = [
        word
        for line in text.splitlines()
        if not line.lstrip().startswith("#")
        for word in line.replace(",", " ").split()
    ]
    digests = []
    for word in words:
        if word.startswith("sha256:"):
            try:
                digest = bytes.fromhex(word[7:])
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise ConfigError(
                    "client_keys: a sha256: entry is not 64 hex digits", ("client_keys",)
                )
            digests.append(digest)
        else:
            digests.append(hashlib.sha256(word.encode()).digest())
    if not digests:
        raise ConfigError("client_keys: no keys in it", ("client_keys",))
    return tuple(digests)


def _aws_keys(text: str) -> dict[str, str]:
    """`ACCESS_KEY_ID SECRET` pairs, one a line (or `ID:SECRET`); # starts a comment."""
    keys = {}
    for line in text.splitlines():
        words = line.replace(":", " ", 1).split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) != 2:
            raise ConfigError(
                "bedrock_access_keys: each line must be an access key id and its secret",
                ("bedrock_access_keys",),
            )
        keys[words[0]] = words[1]
    if not keys:
        raise ConfigError("bedrock_access_keys: no keys in it", ("bedrock_access_keys",))
    return keys


class Access:
    def __init__(
        self,
        client_digests: tuple[bytes, ...] = (),
        upstream_key: str = "",
        aws_keys: Mapping[str, str] | None = None,
    ) -> None:
        self._digests = client_digests
        self._upstream_key = upstream_key.encode()
        self._aws_keys = dict(aws_keys or {})

    @classmethod
    def load(cls, settings: Settings, environ: Mapping[str, str]) -> "Access":
        digests: tuple[bytes, ...] = ()
        if settings.client_keys:
            digests = _digests(read_secret(settings.client_keys, environ, "client_keys"))
        upstream_key = ""
        if settings.upstream_key:
            upstream_key = read_secret(settings.upstream_key, environ, "upstream_key")
        aws_keys = {}
        if settings.bedrock_access_keys:
            text = read_secret(settings.bedrock_access_keys, environ, "bedrock_access_keys")
            aws_keys = _aws_keys(text)
        return cls(digests, upstream_key, aws_keys)

    @property
    def holds_upstream_key(self) -> bool:
        return bool(self._upstream_key)

    @property
    def restricted(self) -> bool:
        return bool(self._digests)

    @property
    def verifies_aws(self) -> bool:
        """Whether Bedrock calls' SigV4 is checked against configured access keys."""
        return bool(self._aws_keys)

    def aws_secret(self, access_key_id: str) -> str | None:
        """The secret of a configured AWS access key id."""
        return self._aws_keys.get(access_key_id)

    def admits(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """Whether the caller may pass: always, without an allow-list."""
        if not self._digests:
            return True
        key = presented_key(headers)
        if not key:
            return False
        digest = hashlib.sha256(key).digest()
        found = False
        for allowed in self._digests:  # no early exit: the time says nothing
            found |= hmac.compare_digest(digest, allowed)
        return found

    def outbound(self, headers: RawHeaders) -> RawHeaders:
        """Upstream request headers: the client's credentials, or the bridge's key."""
        if not self._upstream_key:
            return headers
        kept = [(name, value) for name, value in headers if name.lower() not in CREDENTIALS]
        kept.append((b"x-api-key", self._upstream_key))
        return kept
