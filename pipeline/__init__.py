"""log-anomaly-pipeline: the core library (parsing, sessions, models, training, scoring, evaluation).

Nothing in this package imports Faust, a Kafka client or tritonclient except `pipeline.adapters`,
so the core can be used and tested without a broker or an inference server.
"""

__version__ = "0.1.0"
