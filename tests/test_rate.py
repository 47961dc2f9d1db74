"""Token buckets, on a clock the test moves."""

from kpk_io.config import Settings
from kpk_io.limits import Limits, Rate
from kpk_io.rate import KeyedBuckets, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(Rate(10, 3), clock)
    assert [bucket.take() for _ in range(3)] == [0, 0, 0]
    assert bucket.take() == 100  # ms until the next token
    clock.now += 0.04
    assert bucket.take() == 60  # a refusal takes no token
    clock.now += 0.06
    assert bucket.take() == 0
    clock.now += 60  # refills up to the burst, no further
    assert [bucket.take() for _ in range(4)] == [0, 0, 0, 100]


def test_rate_0_is_unlimited() -> None:
    bucket = TokenBucket(Rate(0, 1), Clock())
    assert all(bucket.take() == 0 for _ in range(10_000))


def test_keyed_buckets_are_per_key_and_bounded() -> None:
    clock = Clock()
    buckets = KeyedBuckets(Rate(1, 1), max_keys=2, clock=clock)
    assert buckets.bucket("a").take() == 0
    assert buckets.bucket("a").take() > 0
    assert buckets.bucket("b").take() == 0
    assert buckets.bucket("c").take() == 0  # "a" is dropped: the least recently used
    assert buckets.bucket("a").take() == 0


def test_the_default_limits_are_the_default_settings() -> None:
    assert Limits.from_settings(Settings()) == Limits()
