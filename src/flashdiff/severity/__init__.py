"""The severity encoder and the start-time policies (adapters) built on it."""

from flashdiff.severity.encoder import SeverityEncoder
from flashdiff.severity.start import AE, Baseline, Fixed, Flash, FlashDDIMEncoding, noise_correction, start_on_grid

__all__ = ["AE", "Baseline", "Fixed", "Flash", "FlashDDIMEncoding", "SeverityEncoder", "noise_correction",
           "start_on_grid"]
