"""Tokens per upstream model, turned into cost with the price table (proxy/config/
report_table.py). A call without token counts (pass-through: the legacy API's answer
has none) has an unknown cost, never 0: it is counted apart."""

from dataclasses import dataclass, field

from proxy.config.report_table import ReportConfig

NO_MODEL = "(unknown)"


@dataclass
class Usage:
    by_model: dict[str, list[int]] = field(default_factory=dict)  # [calls, input, output]
    untokened: int = 0  # calls without token counts

    def count(self, model: str | None, calls: int, input_tokens: int, output_tokens: int) -> None:
        """`calls` calls with token counts on `model`, their tokens summed."""
        if not calls:
            return
        row = self.by_model.setdefault(model or NO_MODEL, [0, 0, 0])
        row[0] += calls
        row[1] += input_tokens
        row[2] += output_tokens

    def tokened(self) -> tuple[int, int, int]:
        """Calls with token counts, and their input and output tokens."""
        rows = self.by_model.values()
        return sum(r[0] for r in rows), sum(r[1] for r in rows), sum(r[2] for r in rows)


@dataclass
class Cost:
    """What calls cost: dollars over the priced calls; the rest unknown (no tokens, or
    a model without a price)."""

    dollars: float | None  # None: no call could be priced
    priced_calls: int
    unknown_calls: int
    per_1000: float | None  # dollars per 1,000 priced calls

    def shown(self) -> str:
        """ "$1.23", "$1.23 + unknown (N calls)", or "unknown" (never $0 for unknown)."""
        if self.dollars is None:
            return "unknown"
        text = dollars(self.dollars)
        if not self.unknown_calls:
            return text
        return f"{text} + unknown ({count_calls(self.unknown_calls)})"


def count_calls(count: int) -> str:
    return f"{count:,} call" + ("" if count == 1 else "s")


def dollars(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.4f}"  # one format everywhere: cents and below show


def cost(usage: Usage, config: ReportConfig) -> Cost:
    total, priced, unknown = 0.0, 0, usage.untokened
    for model, (calls, input_tokens, output_tokens) in usage.by_model.items():
        price = config.price(model)
        if price is None:
            unknown += calls
            continue
        priced += calls
        total += (input_tokens * price.input + output_tokens * price.output) / 1e6
    if not priced:
        return Cost(None, 0, unknown, None)
    return Cost(round(total, 6), priced, unknown, round(total / priced * 1000, 6))
