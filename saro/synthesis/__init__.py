"""Synthesis of training data from teachers (RW stage)."""

from saro.synthesis.rw import RWSynthesisConfig, check_format, check_judgement, run_rw_synthesis

__all__ = ["RWSynthesisConfig", "check_format", "check_judgement", "run_rw_synthesis"]
