"""Duration and TTFB quantiles in bounded memory: exact (nearest rank) up to
`EXACT_SAMPLES` values, then from a fixed log-bucket histogram, within about 4.5 %."""

import math
from collections import Counter

EXACT_SAMPLES = 10_000  # per route and arm, before quantiles switch to the histogram
BUCKETS_PER_DOUBLING = 16  # histogram resolution: 2 ** (1/16) ~ 4.4 % per bucket
BUCKET_FLOOR_MS = 0.1


class Quantiles:
    """Exact nearest-rank quantiles up to `EXACT_SAMPLES` values, then a histogram."""

    def __init__(self) -> None:
        self.exact: list[float] | None = []
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.low = math.inf
        self.high = -math.inf
        self._sorted: list[float] | None = None  # the exact values sorted, once asked

    def add(self, value: float) -> None:
        self.count += 1
        if self.exact is not None:
            self.exact.append(value)
            self._sorted = None
            if len(self.exact) > EXACT_SAMPLES:  # from now on, the histogram
                for kept in self.exact:
                    self._count(kept)
                self.exact = None
            return
        self._count(value)

    def _count(self, value: float) -> None:
        self.low, self.high = min(self.low, value), max(self.high, value)
        self.buckets[self._bucket(value)] += 1

    @staticmethod
    def _bucket(value: float) -> int:
        if value <= BUCKET_FLOOR_MS:
            return 0
        return math.ceil(math.log2(value / BUCKET_FLOOR_MS) * BUCKETS_PER_DOUBLING)

    def quantile(self, q: float) -> float | None:
        if not self.count:
            return None
        return self.at_rank(max(1, math.ceil(q * self.count)))

    def interval(self, q: float, z: float) -> tuple[float, float] | None:
        """A distribution-free confidence interval of the q-quantile: the values at the
        ranks n*q -/+ z*sqrt(n*q*(1-q)) (the binomial order-statistic bound), None
        without values."""
        n = self.count
        if not n:
            return None
        spread = z * math.sqrt(n * q * (1 - q))
        low = min(n, max(1, math.floor(n * q - spread)))
        high = min(n, max(1, math.ceil(n * q + spread) + 1))
        return self.at_rank(low), self.at_rank(high)

    def at_rank(self, rank: int) -> float:
        """The value of nearest rank `rank` (1..count): exact, or its bucket's bound."""
        if self.exact is not None:
            if self._sorted is None:
                self._sorted = sorted(self.exact)
            return self._sorted[rank - 1]
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                upper = BUCKET_FLOOR_MS * 2 ** (bucket / BUCKETS_PER_DOUBLING)
                return round(min(max(upper, self.low), self.high), 2)
        return self.high  # pragma: no cover (the buckets hold every value)
