"""evalledger: versioned LLM evaluation datasets and experiment runs on an event store."""

from evalledger.client import ApiError, Client

__all__ = ["ApiError", "Client"]
__version__ = "0.1.0"
