"""Evaluation: batched generation, refusal detection and refusal rates per prompt kind."""

from saro.evaluation.generate import Generation, generate_batched
from saro.evaluation.refusal import FULL_COMPLIANCE, FULL_REFUSAL, PARTIAL_REFUSAL, classify_refusal, is_refusal

__all__ = [
    "FULL_COMPLIANCE",
    "FULL_REFUSAL",
    "PARTIAL_REFUSAL",
    "Generation",
    "classify_refusal",
    "generate_batched",
    "is_refusal",
]
