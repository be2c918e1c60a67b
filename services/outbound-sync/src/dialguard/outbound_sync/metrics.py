"""Prometheus metrics per target: what was delivered, what failed, how long it took, what waits."""

from prometheus_client import Counter, Gauge, Histogram

DELIVERED = Counter("dialguard_outbound_delivered_total", "Deliveries a target accepted (2xx)", ["target"])
FAILED = Counter(
    "dialguard_outbound_failed_total",
    "Delivery attempts that did not succeed, by outcome (retrying, failed, dead)",
    ["target", "outcome"],
)
LATENCY = Histogram(
    "dialguard_outbound_delivery_seconds",
    "Time of one delivery attempt (request to response)",
    ["target"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BACKLOG = Gauge("dialguard_outbound_backlog", "Pending deliveries of a target", ["target"])
BREAKER_OPEN = Gauge(
    "dialguard_outbound_breaker_open", "1 while a target's circuit breaker is open", ["target"]
)
