"""Prometheus metrics of one worker (served at /metrics by `agents.web`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.lines = Counter("logad_lines", "raw log lines parsed", registry=r)
        self.events = Counter("logad_events", "parsed events (one per session key of a line)", registry=r)
        self.oov = Counter("logad_oov_lines", "lines whose template is not in the deployed set", registry=r)
        self.dead_letters = Counter(
            "logad_dead_letters", "records sent to the dead-letter topic", ["reason"], registry=r
        )
        self.decode_replacements = Counter(
            "logad_decode_replacements",
            "undecodable bytes replaced by U+FFFD in lines parsed anyway (binary lines are dead letters)",
            registry=r,
        )
        self.format_mismatches = Counter(
            "logad_format_mismatch_warnings",
            "warnings that most recent lines of a source failed its log format (wrong source?)",
            ["source"],
            registry=r,
        )
        self.alerts = Counter("logad_alerts", "alerts published", ["kind"], registry=r)
        self.suppressed = Counter(
            "logad_suppressed_alerts",
            "alerts not raised: operators marked the behaviour normal",
            ["kind"],
            registry=r,
        )
        self.feedback_entries = Gauge(
            "logad_feedback_entries",
            "allowlist entries from log-feedback (pairs, parameter keys, windows)",
            registry=r,
        )
        self.redelivered = Counter(
            "logad_redelivered_events", "events skipped as re-deliveries of applied ones", registry=r
        )
        self.skipped_records = Counter(
            "logad_framework_skipped_records",
            "input records the stream framework skipped after a rebalance, read back directly",
            ["topic"],
            registry=r,
        )
        self.inference_latency = Histogram(
            "logad_inference_latency_seconds",
            "time to score one batch",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch_size = Histogram(
            "logad_inference_batch_size",
            "windows per scoring call",
            buckets=(1, 8, 32, 128, 512, 2048, 8192, 32768),
            registry=r,
        )
        self.degraded = Gauge("logad_degraded", "1 while the inference backend is unreachable", registry=r)
        self.inference_failures = Counter(
            "logad_inference_failures", "failed inference attempts (each is retried)", registry=r
        )
        self.records_behind = Gauge(
            "logad_records_behind",
            "records waiting on this worker's partitions (read position)",
            ["topic"],
            registry=r,
        )
        self.consumer_lag = Gauge("logad_consumer_lag", "messages not yet consumed", ["topic"], registry=r)
        self.sessions = Gauge("logad_sessions_open", "sessions held by this worker", registry=r)
        self.state_records = Counter(
            "logad_session_state_records", "delta records written to the session state topic", registry=r
        )
        self.state_snapshots = Counter(
            "logad_session_state_snapshots", "snapshots of a partition's sessions written", registry=r
        )
        self.windows_open = Gauge(
            "logad_windows_open", "time windows of window sources not yet closed (worker memory)", registry=r
        )
        self.unusable_versions = Gauge(
            "logad_unusable_model_versions",
            "newer versions of a model this worker skips as not servable (an older one serves)",
            ["model"],
            registry=r,
        )

    def set_unusable_versions(self, model: str, count: int) -> None:
        """Called at every look for a newer version (pipeline.model_repository.NewestServable)."""
        self.unusable_versions.labels(model=model).set(count)

    def lines_handled(self) -> float:
        """Lines parsed plus records dead-lettered (what `logad replay` sent, once all is handled)."""
        return self.lines._value.get() + sum(
            sample.value
            for metric in self.dead_letters.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )

    def sessions_open(self) -> float:
        return self.sessions._value.get()

    def set_degraded(self, degraded: bool) -> None:
        """Called on every failed inference attempt (True) and on recovery (False)."""
        self.degraded.set(1 if degraded else 0)
        if degraded:
            self.inference_failures.inc()
