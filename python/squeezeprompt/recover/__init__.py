"""Recovery after compression (math and a generic loop): distillation, LoRA, training.

QAT is this same loop on a model whose Linears were swapped for
``squeezeprompt.nn.FakeQuantLinear``.
"""

from squeezeprompt.recover.distill import distill_loss_fn, distillation_loss
from squeezeprompt.recover.lora import LoRAConfig, LoRALinear, apply_lora_
from squeezeprompt.recover.train import OPTIMIZERS, OptimizerKind, TrainConfig, train

__all__ = [
    "OPTIMIZERS",
    "LoRAConfig",
    "LoRALinear",
    "OptimizerKind",
    "TrainConfig",
    "apply_lora_",
    "distill_loss_fn",
    "distillation_loss",
    "train",
]
