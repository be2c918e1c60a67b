"""Prometheus metrics of the messaging layer, shared by every service's /metrics."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PROCESSED = Counter(
    "dialguard_events_processed_total", "Events applied by a consumer", ["consumer", "topic"]
)
EVENTS_DUPLICATE = Counter(
    "dialguard_events_duplicate_total", "Redelivered events skipped by the inbox", ["consumer"]
)
EVENTS_FAILED = Counter(
    "dialguard_events_failed_total", "Events dead-lettered after bounded retries", ["consumer", "reason"]
)
CONSUMER_LAG = Gauge(
    "dialguard_consumer_lag",
    "Messages behind the partition's high watermark",
    ["consumer", "topic", "partition"],
)
BATCH_SECONDS = Histogram(
    "dialguard_consumer_batch_seconds", "Time to apply one consumed batch", ["consumer"]
)
OUTBOX_BACKLOG = Gauge("dialguard_outbox_backlog", "Outbox rows not yet published", ["schema"])
OUTBOX_PUBLISHED = Counter("dialguard_outbox_published_total", "Outbox rows published", ["schema"])
