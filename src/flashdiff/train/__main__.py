"""``python -m flashdiff.train train=autoencoder|latent_ddpm``: training commands (Hydra, accelerate-ready)."""

from flashdiff.cli import train

if __name__ == "__main__":
    train()
