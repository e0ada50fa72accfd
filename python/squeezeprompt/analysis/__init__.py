"""Analysis of a compressed model against its dense original.

Example:
    >>> from squeezeprompt.analysis import layer_losses, to_markdown
"""

from squeezeprompt.analysis.layer_kl import single_layer_kl
from squeezeprompt.analysis.layer_loss import (
    ArchitectureMismatch,
    LayerLoss,
    effective_weight,
    layer_losses,
    sqnr_db,
)
from squeezeprompt.analysis.layer_report import (
    layer_loss_png,
    plot_layer_loss,
    to_markdown,
    worst,
)

__all__ = [
    "ArchitectureMismatch",
    "LayerLoss",
    "effective_weight",
    "layer_loss_png",
    "layer_losses",
    "plot_layer_loss",
    "single_layer_kl",
    "sqnr_db",
    "to_markdown",
    "worst",
]
