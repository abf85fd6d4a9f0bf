"""``python -m flashdiff.train train=PRESET`` (conf/train/) or ``+experiment=train_*``: training (Hydra, accelerate)."""

from flashdiff.cli import train
from flashdiff.distributed import share_run_stamp

if __name__ == "__main__":
    share_run_stamp()  # one multirun folder for every process of an `accelerate launch`
    train()
