"""``python -m flashdiff``: the reconstruction job (Hydra); under ``accelerate launch``/``torchrun`` every process
runs it on one shared run folder (``flashdiff.distributed``)."""

from flashdiff.cli import main
from flashdiff.distributed import share_run_stamp

if __name__ == "__main__":
    share_run_stamp()
    main()
