"""The severity encoder and the start-time policies (adapters) built on it."""

from flashdiff.severity.encoder import SeverityEncoder
from flashdiff.severity.start import ae, fixed, flash, flash_ddim_encoding, noise_correction, none

__all__ = ["SeverityEncoder", "ae", "fixed", "flash", "flash_ddim_encoding", "none", "noise_correction"]
