"""``python -m flashdiff.train train=autoencoder|latent_ddpm``: training commands (Hydra, accelerate-ready)."""

from flashdiff.cli import train
from flashdiff.distributed import share_run_stamp

if __name__ == "__main__":
    share_run_stamp()  # one multirun folder for every process of an `accelerate launch`
    train()
