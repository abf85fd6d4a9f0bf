"""The paper's datasets: bundled split files, the authors' folder layouts, per-image ids/seeds, clear errors."""

from __future__ import annotations

import configparser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flashdiff.data import FFHQ256, CelebAHQ256, LSUNBedrooms256, image_seed, split_ids
from tests.conftest import ROOT

SPLIT_SIZES = {("celebahq", "train"): 25000, ("celebahq", "val"): 4000, ("celebahq", "test"): 1000,
               ("ffhq", "train"): 60000, ("ffhq", "val"): 9000, ("ffhq", "test"): 1000,
               ("bedrooms", "val"): 4000, ("bedrooms", "test"): 1000}


def write_image(path: Path, seed: int, size: int = 48) -> None:
    """A small random RGB image (any size: the datasets resize)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def ffhq_folder(root: Path, n: int) -> Path:
    """The first ``n`` FFHQ test ids in the authors' layout ``<root>/00064/img00064290.png``."""
    for k, i in enumerate(split_ids("ffhq", "test")[:n]):
        write_image(root / f"{int(i) // 1000:05d}" / f"img{int(i):08d}.png", k)
    return root


@pytest.mark.parametrize(("name", "split"), sorted(SPLIT_SIZES))
def test_bundled_split_sizes(name, split):
    ids = split_ids(name, split)
    assert len(ids) == SPLIT_SIZES[name, split] == len(set(ids))


@pytest.mark.parametrize("name", ["celebahq", "ffhq", "bedrooms"])
def test_splits_are_disjoint(name):
    splits = [set(split_ids(name, s)) for s in ("train", "val", "test") if (name, s) in SPLIT_SIZES]
    assert sum(len(s) for s in splits) == len(set().union(*splits))


def test_test_order_is_the_authors():
    assert split_ids("ffhq", "test")[:3] == ["64290", "48515", "53573"]
    assert split_ids("celebahq", "test")[:2] == ["29883", "08804"]
    assert split_ids("bedrooms", "test")[0] == "ffeb306f21978b8a746dadd924217600ec81df3e.webp"


def test_split_files_are_package_data():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    patterns = cfg["options.package_data"]["flashdiff"].replace(",", " ").split()
    assert "data/splits/*.txt" in patterns
    assert len(list((ROOT / "src" / "flashdiff").glob("data/splits/*.txt"))) == 8


def test_ffhq_items_carry_index_id_seed(tmp_path):
    data = FFHQ256(ffhq_folder(tmp_path / "ffhq", 3), num_images=3)
    assert len(data) == 3
    item = data[0]
    assert item["x"].shape == (3, 256, 256) and item["x"].dtype == torch.float32
    assert item["x"].min() >= 0.0 and item["x"].max() <= 1.0
    assert item["index"] == 0 and item["id"] == "/00064/img00064290"  # the authors' seed string
    assert item["seed"] == image_seed("/00064/img00064290")
    assert [data[k]["id"] for k in range(3)] == ["/00064/img00064290", "/00048/img00048515", "/00053/img00053573"]


def test_missing_folder_names_key_layout_and_count(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        FFHQ256(tmp_path / "nowhere")
    msg = str(err.value)
    assert "paths.ffhq_dir=" in msg and "no such folder" in msg and "found 0 of the 200" in msg
    assert "img<id as 8 digits>.png" in msg and "00064/img00064290.png" in msg


def test_missing_images_are_counted(tmp_path):
    root = ffhq_folder(tmp_path / "ffhq", 3)
    with pytest.raises(FileNotFoundError, match=r"paths\.ffhq_dir=.*2 images missing.*found 3 of the 5"):
        FFHQ256(root, num_images=5)
    with pytest.raises(FileNotFoundError, match="found 3 of the 200 FFHQ 256 test images"):
        FFHQ256(root)


def test_test_split_is_the_first_200_ids(tmp_path):
    root = tmp_path / "celeba_hq_256"
    ids = split_ids("celebahq", "test")[:201]
    for k, i in enumerate(ids):
        write_image(root / f"{i}.jpg", k, size=8)
    data = CelebAHQ256(root, size=16)
    assert len(data) == 200 and data[199]["id"] == f"/celeba_hq_256/{ids[199]}"
    assert len(CelebAHQ256(root, size=16, test_size=None, num_images=201)) == 201


def test_celebahq_accepts_png_and_reports_its_key(tmp_path):
    root = tmp_path / "celeba_hq_256"
    i = split_ids("celebahq", "val")[0]
    write_image(root / f"{i}.png", 0)
    assert CelebAHQ256(root, split="val", num_images=1)[0]["id"] == f"/celeba_hq_256/{i}"
    with pytest.raises(FileNotFoundError, match=r"paths\.celebahq_dir=.*1 images missing"):
        CelebAHQ256(root, split="val", num_images=2)


def test_lsun_train_is_the_folder_minus_val_and_test(tmp_path):
    root = tmp_path / "bedroom_train"
    test_id = split_ids("bedrooms", "test")[0]
    own = ["0123abcd.webp", "4567ef00.webp"]
    for k, name in enumerate([test_id, *own]):
        write_image(root / name, k)
    train = LSUNBedrooms256(root, split="train", size=32)
    assert [train[k]["id"] for k in range(2)] == ["/bedroom_train/0123abcd", "/bedroom_train/4567ef00"]
    test = LSUNBedrooms256(root, split="test", num_images=1, size=32)
    assert test[0]["id"] == f"/bedroom_train/{test_id.removesuffix('.webp')}"
    with pytest.raises(FileNotFoundError, match=r"paths\.lsun_bedrooms_dir=.*found 1 of the 200"):
        LSUNBedrooms256(root)


def test_bad_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="dataset.split"):
        FFHQ256(tmp_path, split="training")
