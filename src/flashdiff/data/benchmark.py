"""The paper's datasets — FFHQ 256, CelebA-HQ 256, LSUN Bedrooms 256 — in the authors' folder layouts.

Splits are the authors' id lists, bundled in ``flashdiff/data/splits``; the test set is the first 200 test ids, in
file order. A missing folder or image fails at construction (before any model loads), naming the ``paths.*`` key
to set, the layout expected and how many images were found. Items are ``{"x", "index", "id", "seed"}`` with the
id ``/<parent folder>/<stem>`` the authors seed each image's degradation with (e.g. ``/00064/img00064290``).
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path

from torch.utils.data import Dataset

from flashdiff.data.folder import load_item

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
TEST_SIZE = 200  # the paper evaluates the first 200 test ids (METHOD.md §6)


def split_ids(name: str, split: str) -> list[str]:
    """Ids of the bundled ``splits/<name>_<split>_ids.txt``, in file order."""
    text = (resources.files("flashdiff.data") / "splits" / f"{name}_{split}_ids.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


class SplitFolder(Dataset):
    """One split of a benchmark folder, in the split file's order; subclasses say where each id's file lies.

    ``test_size`` caps the test split (the paper's 200), ``num_images`` any split (e.g. the run's ``num_images``):
    only those images must exist.
    """

    title = ""  # e.g. "FFHQ 256"
    ids_name = ""  # split files splits/<ids_name>_<split>_ids.txt
    config_key = ""  # the paths.* key that points at the folder
    layout = ""  # the expected layout, in words
    source = ""  # where to get the images

    def __init__(self, root: str | Path, split: str = "test", size: int = 256, test_size: int | None = TEST_SIZE,
                 num_images: int | None = None, config_key: str | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"dataset.split must be one of {list(SPLITS)}, got {split!r}")
        self.root, self.split, self.size = Path(root).expanduser(), split, int(size)
        self.config_key = config_key or self.config_key
        if not self.root.is_dir():
            wanted = self._count(split, test_size, num_images)
            raise FileNotFoundError(self._message("no such folder", 0, wanted))
        ids = self.ids(split)
        if split == "test" and test_size is not None:
            ids = ids[:int(test_size)]
        if num_images is not None:
            ids = ids[:int(num_images)]
        self.files = [self.file(i) for i in ids]
        missing = [f for f in self.files if not f.is_file()]
        if missing or not self.files:
            shown = ", ".join(str(f.relative_to(self.root)) for f in missing[:3])
            what = f"{len(missing)} images missing (first: {shown})" if missing else "no images"
            raise FileNotFoundError(self._message(what, len(self.files) - len(missing), len(self.files)))
        log.info("%s %s split: %d images from %s", self.title, split, len(self.files), self.root)

    def _count(self, split: str, test_size: int | None, num_images: int | None) -> int | str:
        """How many images the split would need (``"all"`` where it is the folder's whole content)."""
        try:
            n = len(split_ids(self.ids_name, split))
        except FileNotFoundError:
            return "all"
        n = min(n, int(test_size)) if split == "test" and test_size is not None else n
        return min(n, int(num_images)) if num_images is not None else n

    def _message(self, what: str, found: int, wanted: int | str) -> str:
        """One-line error: the key and folder, what is wrong, the count found, the layout, how to fix it."""
        of = f"of the {wanted}" if isinstance(wanted, int) else "of the"
        return (f"{self.config_key}={self.root}: {what}; found {found} {of} {self.title} {self.split} "
                f"images (ids: {self.ids_source(self.split)}). Expected layout: "
                f"{self.layout}. Get them: {self.source}. Then pass {self.config_key}=/path/to/folder (or set "
                f"paths.data_dir, which holds it by default)")

    def ids(self, split: str) -> list[str]:
        """The split's ids in order (the bundled split file)."""
        return split_ids(self.ids_name, split)

    def ids_source(self, split: str) -> str:
        """Where the split's ids come from, for messages."""
        return f"flashdiff/data/splits/{self.ids_name}_{split}_ids.txt"

    def file(self, image_id: str) -> Path:
        """Path of one id's image under ``root``."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        return load_item(self.files[index], index, self.size)


class FFHQ256(SplitFolder):
    """FFHQ at 256²: ``<root>/<id // 1000, 5 digits>/img<id, 8 digits>.png`` (any size, resized to 256)."""

    title, ids_name, config_key = "FFHQ 256", "ffhq", "paths.ffhq_dir"
    layout = "<paths.ffhq_dir>/<id // 1000 as 5 digits>/img<id as 8 digits>.png, e.g. 00064/img00064290.png"
    source = ("FFHQ from github.com/NVlabs/ffhq-dataset (any resolution: images are resized to 256), each image "
              "saved under the name above")

    def file(self, image_id: str) -> Path:
        """``<root>/00064/img00064290.png`` for id ``64290``."""
        n = int(image_id)
        return self.root / f"{n // 1000:05d}" / f"img{n:08d}.png"


class CelebAHQ256(SplitFolder):
    """CelebA-HQ at 256²: ``<root>/<5-digit id>.jpg`` (``.jpeg`` and ``.png`` are accepted too)."""

    title, ids_name, config_key = "CelebA-HQ 256", "celebahq", "paths.celebahq_dir"
    layout = ("<paths.celebahq_dir>/<5-digit id>.jpg (or .png), e.g. 29883.jpg; a folder named celeba_hq_256 gives "
              "the authors' per-image seeds")
    source = "the 30,000 CelebA-HQ images at 256x256 named 00000.jpg ... 29999.jpg (e.g. the Kaggle celeba_hq_256 set)"
    suffixes = (".jpg", ".jpeg", ".png")

    def file(self, image_id: str) -> Path:
        """The first of ``<root>/<id>.jpg|.jpeg|.png`` that exists (else the ``.jpg`` name)."""
        for suffix in self.suffixes:
            path = self.root / f"{image_id}{suffix}"
            if path.is_file():
                return path
        return self.root / f"{image_id}{self.suffixes[0]}"


class LSUNBedrooms256(SplitFolder):
    """LSUN Bedrooms: flat ``<root>/<sha1>.webp``; val/test from the split files, train = every other ``.webp``."""

    title, ids_name, config_key = "LSUN Bedrooms", "bedrooms", "paths.lsun_bedrooms_dir"
    layout = ("<paths.lsun_bedrooms_dir>/<sha1>.webp, flat, e.g. ffeb306f21978b8a746dadd924217600ec81df3e.webp; "
              "train = every .webp there but the val and test ids; a folder named bedroom_train gives the authors' "
              "per-image seeds")
    source = "the LSUN bedroom_train lmdb from github.com/fyu/lsun, exported as flat webp files (data.py export --flat)"

    def ids(self, split: str) -> list[str]:
        """Val/test: the split file; train: the sorted ``.webp`` names of the folder minus val and test."""
        if split != "train":
            return split_ids(self.ids_name, split)
        held_out = set(split_ids(self.ids_name, "val")) | set(split_ids(self.ids_name, "test"))
        with os.scandir(self.root) as entries:
            names = [e.name for e in entries if e.name.endswith(".webp") and e.name not in held_out]
        return sorted(names)

    def ids_source(self, split: str) -> str:
        """The split file, or for train the folder itself."""
        return "every .webp of the folder but the val and test ids" if split == "train" else super().ids_source(split)

    def file(self, image_id: str) -> Path:
        """``<root>/<sha1>.webp`` (the id is the file name)."""
        return self.root / image_id
