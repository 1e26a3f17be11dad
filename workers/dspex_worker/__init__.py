"""DSPex worker: runs DSPy programs requested over NATS JetStream."""

__version__ = "0.1.0"
