"""The project's exception hierarchy: one root, one subclass per kind of failure.

Messages name the step, what was expected, what arrived, and what to do about it.
"""


class LogadError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(LogadError):
    """A setting is missing or malformed."""


class SetupError(LogadError):
    """The machine lacks something the project needs (Java, Maven, a free port, a binary)."""


class DataError(LogadError):
    """An input file or record does not have the expected shape."""


class ParseError(DataError):
    """A raw log record could not be turned into an event."""


class ModelError(LogadError):
    """A model version is missing, corrupt, or does not match its metadata."""


class InferenceError(LogadError):
    """The inference backend failed to score a batch (retryable unless stated otherwise)."""


class InfrastructureError(LogadError):
    """A server (Kafka, Triton) is unreachable or misbehaving."""
