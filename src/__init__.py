"""evalledger: versioned LLM evaluation datasets and experiment runs on an event store."""

from evalledger.client import ApiError, Client
from evalledger.sdk import EvalResult, aevaluate, evaluate

__all__ = ["ApiError", "Client", "EvalResult", "aevaluate", "evaluate"]
__version__ = "0.1.0"
