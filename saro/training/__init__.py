"""Training stages as thin wrappers over TRL: RW (SFTTrainer) and SRPO (DPOTrainer)."""

from saro.training.common import LoraSettings, load_training_config
from saro.training.dpo import DPOStageConfig, run_dpo
from saro.training.sft import SFTStageConfig, run_sft

__all__ = ["DPOStageConfig", "LoraSettings", "SFTStageConfig", "load_training_config", "run_dpo", "run_sft"]
