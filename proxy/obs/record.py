"""The record of one call: what the edge learns as the call goes, typed.

A record is the only source of a call's canonical log line (`line()`), of its metrics
(proxy/obs/metrics.py reads its fields) and of what the report reads back
(proxy/report/lines.py checks a logged line against the same fields). Every field is in
every line, null when not known (but the prompt and completion texts, logged only with
`log_text`), so the line has one fixed shape per event.

The closed sets are defined once: modes, arms and formats here, error types with the
errors (proxy/errors.py), adaptation kinds where they are made (proxy/translate/request.py);
the metrics' label values and the report's checks come from them.
"""

from dataclasses import dataclass, fields
from operator import attrgetter
from typing import TYPE_CHECKING, ClassVar, Literal, get_args

from proxy.errors import ErrorType
from proxy.rollout.routes import UNROUTED, ArmName, Mode
from proxy.translate.request import AdaptationKind

if TYPE_CHECKING:
    from proxy.obs.metrics import Metrics

Format = Literal["v1", "v2"]
FORMATS: frozenset[str] = frozenset(get_args(Format))
ADAPTATION_KINDS: frozenset[str] = frozenset(get_args(AdaptationKind))


def adaptation_kind(adaptation: str) -> str:
    """The kind of a logged adaptation: the part before ":" (after it is a detail)."""
    return adaptation.split(":", 1)[0]


def adaptation_label(adaptation: str) -> str:
    """How the report lists an adaptation: by its kind, but a dropped field by its name
    (the field is what the app should stop sending; the numbers of a cap are not)."""
    kind = adaptation_kind(adaptation)
    return adaptation if kind == "dropped_field" else kind


def call_failed(status: int | None, error_type: str | None, disconnected: bool) -> bool:
    """Whether a call failed: it was answered (the client did not leave first) with an
    error status, or ended in an error (a stream's error event after its 200)."""
    if status is None or disconnected:
        return False
    return status >= 400 or error_type is not None


@dataclass(slots=True, kw_only=True)
class Record:
    """What every record has: its event name, its line, and what it counts."""

    EVENT: ClassVar[str]
    TEXTS: ClassVar[tuple[str, ...]] = ()  # in the line only when set (log_text)

    def line(self) -> dict[str, object]:
        """The canonical log line's fields: all of them (null when not known), but the
        texts, which are there only when logged."""
        names = _FIELD_NAMES[type(self)]
        line = dict(zip(names, _VALUES[type(self)](self), strict=True))
        for name in self.TEXTS:
            if line[name] is None:
                del line[name]
        return line

    def count(self, metrics: "Metrics") -> None:
        """Count this record in `metrics`."""
        raise NotImplementedError


@dataclass(slots=True, kw_only=True)
class CallRecord(Record):
    """What every call's record has: how it ended."""

    status: int | None = None  # what the client got; null: it left first
    error_type: ErrorType | None = None
    client_disconnected: bool = False
    upstream_status: int | None = None
    request_id: str | None = None  # the upstream's `request-id`
    ttfb_ms: float | None = None
    duration_ms: float | None = None


@dataclass(slots=True, kw_only=True)
class CompleteRecord(CallRecord):
    """`POST /v1/complete`: one line per call, however it ends."""

    EVENT: ClassVar[str] = "complete"
    TEXTS: ClassVar[tuple[str, ...]] = ("prompt", "completion")

    format: Format
    route: str = UNROUTED
    arm: ArmName | None = None
    mode: Mode | None = None
    caller: str | None = None  # the key's fingerprint
    legacy_model: str | None = None
    bedrock_model: str | None = None  # a Bedrock call's model id (proxy/edge/bedrock.py)
    upstream_model: str | None = None
    stream: bool | None = None
    turns: int | None = None  # translate only: what the prompt became
    system: bool | None = None
    prefill: bool | None = None
    adaptations: list[str] | None = None
    upstream_stop_reason: str | None = None
    stop_reason: str | None = None
    stop: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    prompt: str | None = None  # log_text only
    completion: str | None = None  # log_text only

    def count(self, metrics: "Metrics") -> None:
        metrics.complete(self)


@dataclass(slots=True, kw_only=True)
class PassthroughRecord(CallRecord):
    """Any other path, passed on unchanged."""

    EVENT: ClassVar[str] = "passthrough"

    method: str
    path: str

    def count(self, metrics: "Metrics") -> None:
        metrics.passthrough(self)


@dataclass(slots=True, kw_only=True)
class ShadowRecord(Record):
    """A shadowed call asked again of its route's secondary arm, and the two compared."""

    EVENT: ClassVar[str] = "shadow"

    route: str
    caller: str | None
    legacy_model: str | None
    format: Format
    stream: bool | None
    primary_mode: Mode | None
    secondary_mode: Mode
    skipped: bool = False  # too many shadows in flight: not asked
    status: int | None = None  # the secondary's
    error_type: ErrorType | None = None
    stop_match: bool | None = None
    exact_match: bool | None = None
    normalised_match: bool | None = None
    primary_stop_reason: str | None = None
    secondary_stop_reason: str | None = None
    primary_chars: int | None = None
    secondary_chars: int | None = None
    similarity: float | None = None  # token-set Jaccard, 0..1 (proxy/edge/shadows.py)
    length_ratio: float | None = None  # secondary chars / primary chars
    duration_ms: float | None = None

    def count(self, metrics: "Metrics") -> None:
        metrics.shadow(self)


RECORDS: dict[str, type[Record]] = {
    record.EVENT: record for record in (CompleteRecord, PassthroughRecord, ShadowRecord)
}
# Each record's fields in line order (read once: dataclasses.fields is slow per call).
_FIELD_NAMES = {record: tuple(f.name for f in fields(record)) for record in RECORDS.values()}
_VALUES = {record: attrgetter(*names) for record, names in _FIELD_NAMES.items()}


def field_names(record: type[Record]) -> tuple[str, ...]:
    """A record's fields, in line order."""
    return _FIELD_NAMES[record]
