"""Analyses of why safety reasoning works: prompt-embedding overlap, layer-wise probes, reflection faithfulness."""

from saro.analysis.runner import ANALYSES, AnalyzeConfig, TransferSpec, run_analysis

__all__ = ["ANALYSES", "AnalyzeConfig", "TransferSpec", "run_analysis"]
