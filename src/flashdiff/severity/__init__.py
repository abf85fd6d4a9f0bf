"""Where the reverse process starts: the start-time policies (adapters)."""

from flashdiff.severity.start import ae, none

__all__ = ["ae", "none"]
