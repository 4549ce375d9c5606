"""Evaluation: suites, judges and metrics; generation and refusal detection (lower layers, re-exported here)."""

from saro.generation import Generation, generate_batched
from saro.refusal import FULL_COMPLIANCE, FULL_REFUSAL, PARTIAL_REFUSAL, classify_refusal, is_refusal

__all__ = [
    "FULL_COMPLIANCE",
    "FULL_REFUSAL",
    "PARTIAL_REFUSAL",
    "Generation",
    "classify_refusal",
    "generate_batched",
    "is_refusal",
]
