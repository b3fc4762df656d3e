"""A log format the project has no code for: a made-up order service (`logad generate-shop`).

`2026-03-01T12:00:00.123Z checkout[ORD-00042] INFO: paid 12.50 EUR with card 4242`: the session key
is the header field in brackets, amounts get their own mask, and a declined payment logs a Java
stack trace (continuation lines). Normal orders run created -> (coupon) -> reserved -> paid ->
shipped -> closed; an anomalous one is declined (never seen in training: OOV) and cancelled.
Its profile is `shop` in `deploy/formats/example.toml`; the "Bring your own logs" walkthrough of the
README and `tests/integration/test_own_logs.py` use it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

_NORMAL = (
    ("checkout", "INFO", "created order for user {user} with {items} items"),
    ("stock", "INFO", "reserved {items} items in warehouse {wh}"),
    ("payment", "INFO", "paid {amount} EUR with card {card}"),
    ("shipping", "INFO", "shipped parcel {parcel} via carrier {carrier}"),
    ("checkout", "INFO", "closed order after {ms} ms"),
)
_COUPON = ("checkout", "INFO", "applied coupon {coupon} worth {amount} EUR")
_DECLINED = ("payment", "ERROR", "payment declined by bank with code {code}")
_TRACE = ("    at com.shop.pay.Gateway.charge(Gateway.java:88)", "    at com.shop.pay.Api.pay(Api.java:31)")
_CANCELLED = ("checkout", "WARN", "cancelled order: {reason}")


@dataclass(frozen=True)
class ShopLogs:
    records: list[str]  # one per log record, in time order; a declined payment's holds its trace lines
    anomalous: frozenset[str]  # order ids of the declined orders

    def text(self) -> str:
        return "\n".join(self.records) + "\n"


def shop_logs(orders: int, anomalous_share: float, seed: int, first_order: int = 0) -> ShopLogs:
    """`orders` orders numbered from `first_order`, each declined with probability `anomalous_share`."""
    rng = random.Random(seed)
    timed: list[tuple[float, int, str]] = []
    bad = set()
    for n in range(first_order, first_order + orders):
        order = f"ORD-{n:05d}"
        t = 1_772_366_400.0 + n * 0.7 + rng.random()
        values = {
            "user": rng.randint(1, 5000),
            "items": rng.randint(1, 9),
            "wh": rng.choice(["north", "south"]),
            "amount": f"{rng.uniform(3, 400):.2f}",
            "card": rng.randint(1000, 9999),
            "parcel": rng.randint(10**6, 10**7),
            "carrier": rng.choice(["dhl", "ups"]),
            "ms": rng.randint(200, 9000),
            "coupon": rng.randint(100, 999),
            "code": rng.choice([5, 51, 54]),
            "reason": "payment failed",
        }
        steps = list(_NORMAL)
        if rng.random() < 0.3:
            steps.insert(1, _COUPON)
        declined = rng.random() < anomalous_share
        if declined:
            bad.add(order)
            steps = [*steps[: steps.index(_NORMAL[2])], _DECLINED, _CANCELLED]
        stamp = t
        for service, level, text in steps:
            stamp += 0.05 + rng.random() * 0.2
            when = _iso(stamp)
            line = f"{when} {service}[{order}] {level}: {text.format(**values)}"
            if (service, level, text) == _DECLINED:
                line = "\n".join([line, *_TRACE])
            timed.append((stamp, len(timed), line))
    timed.sort()
    return ShopLogs([line for _, _, line in timed], frozenset(bad))


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
