"""``python -m flashdiff``: the reconstruction job (Hydra); under ``accelerate launch``/``torchrun`` every process
runs it on one shared run folder (``flashdiff.distributed``)."""

import sys

from flashdiff.cli import check_output_folder, main
from flashdiff.distributed import share_run_stamp

if __name__ == "__main__":
    check_output_folder(sys.argv[1:])
    share_run_stamp()
    main()
