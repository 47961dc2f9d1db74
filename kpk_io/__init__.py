"""kpk-io: realtime shared room state over Socket.IO, persisted in Redis."""

__version__ = "0.1.0"
