"""The bundled toy world: small RGB crops of the photos that ship inside scikit-image, scikit-learn and matplotlib.

Splits are by photo, so no test crop comes from a photo seen in training:
``train`` draws random crops (with flips) of nine photos, ``val`` is a grid of crops of ``chelsea`` and
``test`` a grid of crops of ``coffee`` and ``grace_hopper``.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from flashdiff.data.seeding import image_seed

log = logging.getLogger(__name__)

SPLIT_PHOTOS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
              "motorcycle_left", "motorcycle_right", "china", "flower"),
    "val": ("chelsea",),
    "test": ("coffee", "grace_hopper"),
}
EXTRA_TRAIN_PHOTOS = ("brick", "grass", "gravel", "camera", "coins", "moon")  # grey skimage photos: train_extra
TRAIN_AUGMENTATIONS = ("transpose", "channels")  # dataset.train_augment: on top of the train split's flips
MIN_CROP_STD = 0.02  # crops flatter than this (black sky, retina border) carry no structure and are skipped


def detail(crop: np.ndarray) -> float:
    """RMS difference between neighbouring pixels of an (H, W, 3) crop in [0, 1] (both directions)."""
    dy, dx = np.diff(crop, axis=0), np.diff(crop, axis=1)
    return float(np.sqrt((dy ** 2).mean() + (dx ** 2).mean()))


@functools.cache
def load_photo(name: str, downscale: int = 1) -> np.ndarray:
    """A bundled photo as float32 (H, W, 3) in [0, 1], ``downscale`` × smaller by area means; nothing is downloaded."""
    if downscale > 1:
        photo = load_photo(name)
        h, w = photo.shape[0] // downscale, photo.shape[1] // downscale
        blocks = photo[:h * downscale, :w * downscale].reshape(h, downscale, w, downscale, 3)
        return np.ascontiguousarray(blocks.mean(axis=(1, 3), dtype=np.float64), dtype=np.float32)
    import skimage.data

    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        img = load_sample_image(f"{name}.jpg")
    elif name == "grace_hopper":
        import matplotlib.cbook
        from PIL import Image

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            img = np.asarray(Image.open(f).convert("RGB"))
    elif name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        img = left if name.endswith("left") else right
    else:
        img = getattr(skimage.data, name)()
    if img.ndim == 2:  # a grey photo (``EXTRA_TRAIN_PHOTOS``): the same values in R, G and B
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3], dtype=np.float32) / 255.0


def grid_crops(names: tuple[str, ...], size: int, downscale: int = 1,
               stride: int | None = None) -> list[tuple[str, int, int]]:
    """Crops (photo, row, col) of the (downscaled) photos every ``stride`` pixels (default ``size``: non-overlapping),
    flat ones left out, in a fixed shuffled order."""
    step = size if stride is None else stride
    crops = []
    for name in names:
        photo = load_photo(name, downscale)
        for r in range(0, photo.shape[0] - size + 1, step):
            for c in range(0, photo.shape[1] - size + 1, step):
                if photo[r:r + size, c:c + size].std() >= MIN_CROP_STD:
                    crops.append((name, r, c))
    order = np.random.default_rng(0).permutation(len(crops))  # fixed order: the first N mix both photos
    return [crops[k] for k in order]


class ToyImages(Dataset):
    """Toy-world crops as ``{"x": (3, size, size) in [0,1], "index", "id", "seed"}``.

    ``train`` has ``length`` items, each a crop drawn deterministically from its index (random position and
    flips); ``val`` and ``test`` are fixed grids of non-overlapping crops of held-out photos (``val_stride`` <
    ``size`` makes ``val`` a denser grid of overlapping crops: its one photo gives only 28 crops at ``downscale``
    2). ``downscale`` > 1 crops photos shrunk that many times (a harder world: more structure per crop, fewer
    crops); ids then carry ``@x<downscale>``. ``train_downscales`` (train only) draws each train crop's scale
    uniformly from that list instead, e.g. ``[1, 2]``: more training content for a world at ``downscale`` 2.
    ``train_min_detail`` (train only) redraws crops whose RMS pixel difference to their neighbours (``detail``) is
    below it: flat crops (sky, walls) show no blur, so they teach a severity encoder nothing. ``train_augment``
    (train only) adds augmentations to the flips: ``transpose`` (with the flips, all 8 rotations/reflections) and
    ``channels`` (a random permutation of the RGB channels): more content variety from the nine photos.
    ``train_extra`` (train only) adds grey photos of ``EXTRA_TRAIN_PHOTOS`` (textures: brick, grass, gravel; scenes:
    camera, coins, moon) to the nine, as grey RGB crops: content the colour photos lack, for a severity encoder.
    """

    def __init__(self, split: str = "test", size: int = 32, length: int = 50_000, downscale: int = 1,
                 val_stride: int | None = None, train_downscales: list[int] | None = None,
                 train_min_detail: float | None = None, train_augment: list[str] | None = None,
                 train_extra: list[str] | None = None) -> None:
        if split not in SPLIT_PHOTOS:
            raise ValueError(f"dataset.split must be one of {sorted(SPLIT_PHOTOS)}, got {split!r}")
        if size < 8:
            raise ValueError(f"dataset.size must be at least 8 pixels, got {size}")
        if not (isinstance(downscale, int) and downscale >= 1):
            raise ValueError(f"dataset.downscale must be an integer >= 1 (1 = native size), got {downscale!r}")
        if val_stride is not None and not (isinstance(val_stride, int) and 1 <= val_stride <= size):
            raise ValueError(f"dataset.val_stride must be null (= dataset.size: non-overlapping val crops) or an "
                             f"integer in [1, {size}], got {val_stride!r}")
        scales = [downscale] if train_downscales is None else list(train_downscales)
        if not scales or not all(isinstance(k, int) and k >= 1 for k in scales):
            raise ValueError(f"dataset.train_downscales must be null (= [dataset.downscale]) or a non-empty list of "
                             f"integers >= 1, got {train_downscales!r}")
        if train_min_detail is not None and not 0.0 <= float(train_min_detail) < 1.0:
            raise ValueError(f"dataset.train_min_detail must be null (keep every non-flat crop) or in [0, 1), got "
                             f"{train_min_detail!r}")
        augment = list(train_augment or [])
        if not set(augment) <= set(TRAIN_AUGMENTATIONS):
            raise ValueError(f"dataset.train_augment must be a list of {list(TRAIN_AUGMENTATIONS)} (or null), got "
                             f"{train_augment!r}")
        extra = list(train_extra or [])
        if not set(extra) <= set(EXTRA_TRAIN_PHOTOS) or len(set(extra)) != len(extra):
            raise ValueError(f"dataset.train_extra must be a list of distinct photos of {list(EXTRA_TRAIN_PHOTOS)} (or "
                             f"null), got {train_extra!r}")
        self.split, self.size, self.downscale = split, size, downscale
        self.augment = frozenset(augment)
        self.min_detail = None if train_min_detail is None else float(train_min_detail)
        self.tag = "" if downscale == 1 else f"@x{downscale}"  # keeps ids (and so noise seeds) apart across scales
        if split == "train":
            self.length, self.scales = length, scales
            self.photos = SPLIT_PHOTOS[split] + tuple(extra)
            self.areas = {k: np.array([np.prod(load_photo(n, k).shape[:2]) for n in self.photos],
                                      dtype=np.float64) for k in scales}
            if scales != [downscale]:
                self.tag = "@x" + "+".join(map(str, scales))
        else:
            self.crops = grid_crops(SPLIT_PHOTOS[split], size, downscale, val_stride if split == "val" else None)
            self.length = len(self.crops)
        log.debug("toy %s split: %d crops of %dx%d%s", split, self.length, size, size,
                 f" (photos downscaled {downscale}x)" if downscale > 1 else "")

    def __len__(self) -> int:
        return self.length

    def _train_crop(self, index: int) -> tuple[str, np.ndarray]:
        """A random crop with flips, drawn from the index alone (scale, area-weighted photo, flat crops redrawn)."""
        rng = np.random.default_rng(index)
        names = self.photos
        for _ in range(20):
            # one scale draws nothing extra, so a single-scale world keeps exactly its earlier crops
            scale = self.scales[rng.integers(len(self.scales))] if len(self.scales) > 1 else self.scales[0]
            areas = self.areas[scale]
            name = names[rng.choice(len(names), p=areas / areas.sum())]
            photo = load_photo(name, scale)
            r = rng.integers(0, photo.shape[0] - self.size + 1)
            c = rng.integers(0, photo.shape[1] - self.size + 1)
            crop = photo[r:r + self.size, c:c + self.size]
            if crop.std() >= MIN_CROP_STD and (self.min_detail is None or detail(crop) >= self.min_detail):
                break  # a crop that passes draws nothing extra, so only rejected crops change
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        if "transpose" in self.augment and rng.random() < 0.5:  # drawn after the flips: no option, same crops
            crop = crop.transpose(1, 0, 2)
        if "channels" in self.augment:
            crop = crop[:, :, rng.permutation(3)]
        return f"toy/train{self.tag}/{index}", crop

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        if self.split == "train":
            image_id, crop = self._train_crop(index)
        else:
            name, r, c = self.crops[index]
            image_id = f"toy/{name}{self.tag}/r{r:04d}c{c:04d}"
            crop = load_photo(name, self.downscale)[r:r + self.size, c:c + self.size]
        x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)  # (3, size, size)
        return {"x": x, "index": index, "id": image_id, "seed": image_seed(image_id)}
