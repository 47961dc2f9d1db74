"""Token buckets: how often one connection (or one HTTP client address) may ask."""

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from kpk_io.limits import Rate

Clock = Callable[[], float]


class TokenBucket:
    """Holds up to `rate.burst` tokens, refilled at `rate.per_second`; each request takes one."""

    __slots__ = ("_clock", "_rate", "_stamp", "_tokens")  # one or three per connection

    def __init__(self, rate: Rate, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._clock = clock
        self._tokens = float(rate.burst)
        self._stamp = clock()

    def take(self) -> int:
        """0 when a token was taken; otherwise the milliseconds until one will be there
        (and nothing was taken, so a refused request costs no token)."""
        if self._rate.unlimited:
            return 0
        now = self._clock()
        refill = (now - self._stamp) * self._rate.per_second
        self._tokens = min(float(self._rate.burst), self._tokens + refill)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0
        return max(1, math.ceil((1 - self._tokens) / self._rate.per_second * 1000))


def connection_bucket(rate: Rate) -> TokenBucket:
    """A bucket for one connection: an unlimited rate's is one shared bucket (it keeps no
    state), a limited rate's a bucket of its own."""
    return _UNLIMITED if rate.unlimited else TokenBucket(rate)


_UNLIMITED = TokenBucket(Rate(0, 1))


class KeyedBuckets:
    """One bucket per key (a client address), for requests that have no connection.

    At most `max_keys` are kept, least recently used dropped first: dropping a bucket only
    hands its key a fresh one, so the cap bounds memory, not the rate of a few keys.
    """

    def __init__(self, rate: Rate, max_keys: int = 10_000, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._unlimited = TokenBucket(rate, clock)

    def bucket(self, key: str) -> TokenBucket:
        if self._rate.unlimited:
            return self._unlimited
        bucket = self._buckets.pop(key, None) or TokenBucket(self._rate, self._clock)
        self._buckets[key] = bucket
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return bucket
