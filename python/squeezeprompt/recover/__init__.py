"""Recovery after compression (math and a generic loop): distillation, QAT, LoRA, training.

QAT is the same loop on a model whose int layers were swapped for
``squeezeprompt.nn.FakeQuantLinear`` (:func:`prepare_qat_from_quantized_`); LoRA wraps
them with :class:`LoRALinear` adapters; plain distillation trains the float parameters
left (:func:`mark_trainable`).
"""

from squeezeprompt.recover.distill import distill_loss_fn, distillation_loss
from squeezeprompt.recover.lora import LoRAConfig, LoRALinear, apply_lora_
from squeezeprompt.recover.qat import QUANTIZED, prepare_qat_from_quantized_
from squeezeprompt.recover.train import (
    OPTIMIZERS,
    LrScale,
    LrSchedule,
    OptimizerKind,
    TrainConfig,
    lr_factor,
    train,
)
from squeezeprompt.recover.trainable import mark_trainable, norms_and_biases, trainable_count

__all__ = [
    "OPTIMIZERS",
    "QUANTIZED",
    "LoRAConfig",
    "LoRALinear",
    "LrSchedule",
    "LrScale",
    "OptimizerKind",
    "TrainConfig",
    "apply_lora_",
    "distill_loss_fn",
    "distillation_loss",
    "lr_factor",
    "mark_trainable",
    "norms_and_biases",
    "prepare_qat_from_quantized_",
    "train",
    "trainable_count",
]
