"""Synthesis of training data: RW reasoning chains from a teacher; SRPO preference pairs from on-policy traces."""

from saro.synthesis.rw import RWSynthesisConfig, check_format, check_judgement, run_rw_synthesis
from saro.synthesis.srpo import SRPOSynthesisConfig, run_srpo_synthesis

__all__ = [
    "RWSynthesisConfig",
    "SRPOSynthesisConfig",
    "check_format",
    "check_judgement",
    "run_rw_synthesis",
    "run_srpo_synthesis",
]
