"""Evaluate from your own code: `evaluate()` runs a function of yours over a stored
dataset version in your process and records it as a run (see evaluate.py)."""

from evalledger.sdk.evaluate import EvaluationInterrupted, aevaluate, evaluate
from evalledger.sdk.result import EvalResult

__all__ = ["EvalResult", "EvaluationInterrupted", "aevaluate", "evaluate"]
