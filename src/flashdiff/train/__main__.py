"""``python -m flashdiff.train train=PRESET`` (conf/train/) or ``+experiment=train_*`` (and the ``flashdiff-train``
command): training (Hydra, accelerate)."""

from flashdiff.cli import train
from flashdiff.distributed import share_run_stamp


def entry() -> None:
    """The command: one multirun folder for every process of an `accelerate launch`, then training."""
    share_run_stamp()
    train()


if __name__ == "__main__":
    entry()
