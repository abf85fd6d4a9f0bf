"""A generic image-folder dataset with an optional id-list split file, resized and centre-cropped."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF

from flashdiff.data.seeding import image_seed

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class ImageFolder(Dataset):
    """Images under ``root`` (recursively) as ``{"x": (3, size, size) in [0,1], "index", "id", "seed"}``.

    With ``split_file`` (one id per line: a file stem), only those images are used, in the file's order; every
    listed id must exist. A ``{split}`` in its name is replaced by ``split`` (``train``/``val``/``test``), so a
    sweep's ``dataset.split=val`` tunes on validation ids; any split but ``test`` needs that placeholder, so tuning
    never silently runs on the test images. The id of an item is ``/<parent folder>/<stem>``, as the authors' code
    seeds images, or its path relative to ``root`` (without suffix) where two files would share that id; with a
    split file, ids are stems and must be unique under ``root``.
    """

    def __init__(self, root: str | Path, split_file: str | Path | None = None, size: int = 256,
                 num_images: int | None = None, config_key: str = "dataset.root", split: str = "test") -> None:
        self.root, self.size = Path(root).expanduser(), size
        if "{split}" in str(split_file or ""):
            split_file = str(split_file).replace("{split}", split)
        elif split != "test":
            raise ValueError(f"dataset.split={split} needs dataset.split_file with a {{split}} placeholder (e.g. "
                             f"<folder>/{{split}}_ids.txt holding train_ids.txt, val_ids.txt, test_ids.txt); without "
                             "it every image of dataset.root is the test set")
        if not self.root.is_dir():
            raise FileNotFoundError(f"{config_key}={self.root}: no such folder of images")
        found = [p for p in sorted(self.root.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        if split_file is None:
            self.files = found
        else:
            files = _by_stem(found, config_key, self.root)
            ids = [line.strip() for line in Path(split_file).read_text().splitlines() if line.strip()]
            ids = ids[:num_images] if num_images is not None else ids
            missing = [i for i in ids if i not in files]
            if missing:
                raise FileNotFoundError(
                    f"{config_key}={self.root}: {len(missing)} of the {len(ids)} ids of {split_file} are missing "
                    f"(first: {missing[:3]}); found {len(files)} images there")
            self.files = [files[i] for i in ids]
        if not self.files:
            raise FileNotFoundError(f"{config_key}={self.root}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
        self.ids = image_ids(self.files, self.root)
        log.info("%d images from %s", len(self.files), self.root)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        return load_item(self.files[index], index, self.size, self.ids[index])


def _by_stem(files: list[Path], config_key: str, root: Path) -> dict[str, Path]:
    """Files keyed by stem (a split file's ids); two files with one stem are an error naming both."""
    by_stem: dict[str, Path] = {}
    for p in files:
        if p.stem in by_stem:
            from flashdiff.errors import InputError

            raise InputError(f"{config_key}={root}: {by_stem[p.stem]} and {p} share the id {p.stem!r} a split file "
                             "refers to; rename one or point dataset.root at a folder where stems are unique")
        by_stem[p.stem] = p
    return by_stem


def image_ids(files: list[Path], root: Path) -> list[str]:
    """``/<parent folder>/<stem>`` per file (the authors' seeding string); where two files share it, every id is the
    path relative to ``root`` without suffix (``/p/q/img``), so ids stay unique."""
    ids = [f"/{p.parent.name}/{p.stem}" for p in files]
    if len(set(ids)) == len(ids):
        return ids
    log.info("%s: files share /<parent>/<stem> ids; using paths relative to the folder as ids", root)
    return ["/" + p.relative_to(root).with_suffix("").as_posix() for p in files]


def load_item(path: Path, index: int, size: int, image_id: str | None = None) -> dict:
    """``{"x": (3, size, size) in [0,1], "index", "id", "seed"}``: shorter side resized (bilinear), centre crop.

    The id is ``/<parent folder>/<stem>`` by default, the string the authors' code seeds an image's degradation
    with. A file that cannot be read as an image is an ``InputError`` naming it.
    """
    from PIL import UnidentifiedImageError

    from flashdiff.errors import InputError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise InputError(f"{path}: cannot be read as an image ({err}); remove or replace it") from None
    img = TF.center_crop(TF.resize(img, size, interpolation=TF.InterpolationMode.BILINEAR), size)
    x = TF.to_tensor(img).to(torch.float32)  # (3, size, size) in [0, 1]
    image_id = image_id or f"/{path.parent.name}/{path.stem}"
    return {"x": x, "index": index, "id": image_id, "seed": image_seed(image_id)}
