"""The per-sample cost counters, in a module without torch: the records and report readers name them too."""

COUNTERS = ("score_forwards", "backward_passes", "decoder_calls", "encoder_calls", "inner_iterations")
"""What a reverse step costs, counted per sample besides NFE (METHOD.md §4)."""
