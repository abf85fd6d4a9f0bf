"""Converters from the original checkpoints to flashdiff folders (``python -m flashdiff.convert``).

``convert_ldm``: a latent-diffusion ``model.ckpt`` + ``config.yaml`` -> diffusers ``vqvae/``, ``unet/``,
``scheduler/`` (``model.path``). ``convert_severity_encoder``: the authors' severity-encoder ``.ckpt`` -> a
``SeverityEncoder`` folder (``severity_encoder``). Checkpoints are read with ``torch.load(weights_only=True)`` only.
"""

from flashdiff.convert.architectures import architecture
from flashdiff.convert.checkpoint import UnsafeCheckpointError, load_checkpoint
from flashdiff.convert.ldm import convert_ldm
from flashdiff.convert.mapping import ConversionError
from flashdiff.convert.severity import convert_severity_encoder

__all__ = ["ConversionError", "UnsafeCheckpointError", "architecture", "convert_ldm", "convert_severity_encoder",
           "load_checkpoint"]
