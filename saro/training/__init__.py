"""Training stages as thin wrappers over TRL: RW (SFTTrainer); SRPO (DPOTrainer) follows in issue 3."""

from saro.training.common import LoraSettings, load_training_config
from saro.training.sft import SFTStageConfig, run_sft

__all__ = ["LoraSettings", "SFTStageConfig", "load_training_config", "run_sft"]
