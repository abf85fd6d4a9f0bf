"""Several processes on one job (``accelerate launch``, ``torchrun``, a SLURM job of several tasks): shard and merge.

Every process runs the whole Hydra job. The test images still to do are dealt out round-robin (the k-th image left
goes to process k % world), each process appends its rows to its own ``samples.rank<r>.csv`` as it goes, and the
main process folds those shards into ``samples.csv`` (atomically, leftovers of an interrupted run included) before
it writes ``summary.json``. Per-image seeds (``flashdiff.data.seeding``) make every row independent of the number of
processes. A plain run (one process) never touches ``torch.distributed`` and writes ``samples.csv`` directly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

T = TypeVar("T")
RUN_STAMP = "FLASHDIFF_RUN_STAMP"  # ${oc.env:...} in conf/config.yaml: the <date>/<time> of Hydra's run folder
SHARD_PATTERN = "samples.rank*.csv"


def _export_submitit_tasks() -> None:
    """In a submitit job of several tasks (``hydra.launcher.tasks_per_node``), export torch's rank variables."""
    if "SUBMITIT_EXECUTOR" not in os.environ or "WORLD_SIZE" in os.environ:
        return
    from submitit.helpers import TorchDistributedEnvironment

    tasks = TorchDistributedEnvironment()
    if tasks.world_size > 1:
        tasks.export(set_cuda_visible_devices=False)


def launched() -> bool:
    """Whether this process was started as one of several (the launcher's ``WORLD_SIZE`` > 1)."""
    _export_submitit_tasks()
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def state() -> Any:
    """Accelerate's process state; the first call joins the process group (gloo when no CUDA device is visible:
    accelerate forms a CPU group only when asked with ``cpu=True``, else every CPU process would be rank 0)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def rank_and_world() -> tuple[int, int]:
    """(this process's index, number of processes); (0, 1) for a plain run."""
    if not launched():
        return 0, 1
    s = state()
    return s.process_index, s.num_processes


def is_main_process() -> bool:
    """True on the process that writes the job's shared files (the only one of a plain run)."""
    return rank_and_world()[0] == 0


def barrier() -> None:
    """Wait for every process of the job (nothing to wait for in a plain run)."""
    if launched():
        state().wait_for_everyone()


def broadcast(value: T) -> T:
    """The main process's ``value`` on every process (a barrier too); ``value`` itself in a plain run."""
    if not launched():
        return value
    from accelerate.utils import broadcast_object_list

    state()
    return broadcast_object_list([value], from_process=0)[0]


def process_device(device: torch.device) -> torch.device:
    """``cuda`` becomes this process's own GPU (its local index among the visible ones) when several processes
    share a machine."""
    if device.type != "cuda" or device.index is not None or not launched():
        return device
    import torch

    return torch.device("cuda", state().local_process_index % torch.cuda.device_count())


def share(items: Sequence[T], rank: int, world: int) -> list[T]:
    """This process's part of ``items``: the k-th item goes to process ``k % world`` (none twice, none dropped)."""
    return list(items[rank::world])


def shard_file(out: str | Path, rank: int, world: int) -> Path:
    """Where a process appends its rows: ``samples.csv`` for a plain run, ``samples.rank<r>.csv`` otherwise."""
    return Path(out) / ("samples.csv" if world == 1 else f"samples.rank{rank}.csv")


def fold_shards(out: str | Path) -> int:
    """Move the rows of every ``samples.rank*.csv`` in ``out`` into ``samples.csv`` (rows already there win), which
    is rewritten atomically, sorted by index and without damaged rows; then delete the shards. Returns the number of
    rows added. Safe to repeat after a crash at any point."""
    from flashdiff.records import read_samples, write_samples

    out = Path(out)
    shards = sorted(out.glob(SHARD_PATTERN))
    rows = read_samples(out / "samples.csv")
    if not shards and not rows:
        return 0
    have = {(r["index"], r["draw"]) for r in rows}
    new: dict[tuple[str, str], dict[str, str]] = {}
    for shard in shards:
        for row in read_samples(shard):
            if (row["index"], row["draw"]) not in have:
                new.setdefault((row["index"], row["draw"]), row)
    write_samples(out / "samples.csv", rows + list(new.values()))
    for shard in shards:
        shard.unlink()
    return len(new)


def merge_rows(out: str | Path) -> None:
    """Every process waits, the main one folds the shards into ``samples.csv``, every process waits again."""
    barrier()
    if is_main_process() and (added := fold_shards(out)):
        log.info("merged %d rows of the process shards into %s", added, Path(out) / "samples.csv")
    barrier()


def share_run_stamp() -> None:
    """Give every process of a launch the main process's start time as ``$FLASHDIFF_RUN_STAMP``, so Hydra's
    timestamped run and sweep folders (conf/config.yaml) are the same folder for all of them. Call before Hydra."""
    if os.environ.get(RUN_STAMP) or not launched():
        return
    from accelerate.utils import broadcast_object_list

    stamp = [datetime.now().strftime("%Y-%m-%d/%H-%M-%S")]
    state()
    broadcast_object_list(stamp, from_process=0)
    os.environ[RUN_STAMP] = stamp[0]
