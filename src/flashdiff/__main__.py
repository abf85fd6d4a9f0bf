"""``python -m flashdiff`` (and the ``flashdiff`` command): the reconstruction job (Hydra); under ``accelerate launch``/
``torchrun`` every process runs it on one shared run folder (``flashdiff.distributed``)."""

import sys

from flashdiff.cli import check_output_folder, main
from flashdiff.distributed import share_run_stamp


def entry() -> None:
    """The command: check the output folder before Hydra makes it, share the run stamp, run the job."""
    check_output_folder(sys.argv[1:])
    share_run_stamp()
    main()


if __name__ == "__main__":
    entry()
