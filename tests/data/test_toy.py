import itertools

import numpy as np
import pytest
import torch

from flashdiff.data import ImageFolder, ToyImages, image_seed
from flashdiff.data.toy import SPLIT_PHOTOS, detail, load_photo


def test_splits_use_disjoint_photos():
    train, val, test = (set(SPLIT_PHOTOS[s]) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)


@pytest.mark.parametrize("split", ["val", "test"])
def test_grid_splits_are_fixed_and_unique(split):
    a, b = ToyImages(split), ToyImages(split)
    assert len(a) == len(b) and [a[k]["id"] for k in range(len(a))] == [b[k]["id"] for k in range(len(b))]
    ids = [a[k]["id"] for k in range(len(a))]
    assert len(set(ids)) == len(ids)
    item = a[3]
    assert item["x"].shape == (3, 32, 32) and item["x"].dtype == torch.float32
    assert item["x"].min() >= 0.0 and item["x"].max() <= 1.0
    assert item["index"] == 3 and item["seed"] == image_seed(item["id"])


def test_test_split_is_large_enough_and_mixes_photos():
    test = ToyImages("test")
    assert len(test) >= 64
    first = {test[k]["id"].split("/")[1] for k in range(32)}
    assert first == {"coffee", "grace_hopper"}
    assert all(test[k]["x"].std() >= 0.02 for k in range(32))


def test_train_items_are_deterministic_per_index_and_vary():
    a, b = ToyImages("train", length=100), ToyImages("train", length=100)
    assert torch.equal(a[7]["x"], b[7]["x"])
    assert not torch.equal(a[7]["x"], a[8]["x"])
    with pytest.raises(IndexError):
        a[100]


def test_other_crop_size():
    assert ToyImages("val", size=64)[0]["x"].shape == (3, 64, 64)
    with pytest.raises(ValueError, match="dataset.split"):
        ToyImages("nope")


def test_downscaled_world_crops_area_means_of_the_photos_under_their_own_ids():
    native, small = ToyImages("test"), ToyImages("test", downscale=2)
    assert len(small) < len(native) / 3  # a quarter of the area, flat crops still left out
    item = small[0]
    name, rc = item["id"].split("/")[1:]
    assert name.endswith("@x2") and item["seed"] == image_seed(item["id"])
    r, c = int(rc[1:5]), int(rc[6:])
    photo = torch.from_numpy(load_photo(name.removesuffix("@x2"))).permute(2, 0, 1)
    block = photo[:, 2 * r:2 * r + 64, 2 * c:2 * c + 64]
    torch.testing.assert_close(item["x"], torch.nn.functional.avg_pool2d(block[None], 2)[0])
    assert ToyImages("train", length=4, downscale=2)[0]["id"] == "toy/train@x2/0"
    assert ToyImages("train", length=4)[0]["id"] == "toy/train/0"  # the native world's ids (and seeds) unchanged
    with pytest.raises(ValueError, match="dataset.downscale"):
        ToyImages("val", downscale=0)


def test_image_seed_matches_reference_str2int():
    s = "/00064/img00064290"
    assert image_seed(s) == int.from_bytes(s.encode(), "little") % (2**32 - 1)


def _write_images(folder, names, size=(40, 60)):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.new("RGB", size, color=(10 * k, 100, 200)).save(folder / f"{name}.png")


def test_image_folder_with_split_file(tmp_path):
    _write_images(tmp_path / "imgs" / "00000", ["a", "b", "c"])
    split = tmp_path / "split.txt"
    split.write_text("c\na\n")
    ds = ImageFolder(tmp_path / "imgs", split_file=split, size=16)
    assert len(ds) == 2
    item = ds[0]
    assert item["id"] == "/00000/c" and item["x"].shape == (3, 16, 16)
    assert abs(item["x"][0].mean().item() - 20 / 255) < 1e-3  # colour of image "c", centre-cropped
    assert len(ImageFolder(tmp_path / "imgs", size=16)) == 3


def test_image_folder_errors_name_the_key_and_counts(tmp_path):
    _write_images(tmp_path / "imgs", ["a"])
    split = tmp_path / "split.txt"
    split.write_text("a\nzz\n")
    with pytest.raises(FileNotFoundError, match=r"dataset.root=.*1 of the 2 ids.*found 1 images"):
        ImageFolder(tmp_path / "imgs", split_file=split)
    with pytest.raises(FileNotFoundError, match="dataset.root"):
        ImageFolder(tmp_path / "missing")


def test_image_folder_split_placeholder_picks_the_split_file(tmp_path):
    _write_images(tmp_path / "imgs", ["a", "b", "c"])
    (tmp_path / "val_ids.txt").write_text("b\n")
    (tmp_path / "test_ids.txt").write_text("c\na\n")
    pattern = tmp_path / "{split}_ids.txt"
    assert [d["id"] for d in ImageFolder(tmp_path / "imgs", split_file=pattern, size=8, split="val")] == ["/imgs/b"]
    assert len(ImageFolder(tmp_path / "imgs", split_file=pattern, size=8)) == 2  # test is the default split
    with pytest.raises(ValueError, match=r"dataset.split=val needs dataset.split_file with a \{split\}"):
        ImageFolder(tmp_path / "imgs", size=8, split="val")  # never tune on the test images by accident


def test_val_stride_gives_a_denser_grid_of_overlapping_val_crops_and_leaves_test_alone():
    sparse, dense = ToyImages("val", downscale=2), ToyImages("val", downscale=2, val_stride=16)
    assert len(sparse) == 28 and len(dense) > 3 * len(sparse)  # chelsea at 2x: 4 x 7 crops, or 8 x 13 every 16 px
    assert {item["id"] for item in sparse} < {item["id"] for item in dense}  # the sparse grid is part of the dense one
    assert len(ToyImages("test", val_stride=16)) == len(ToyImages("test"))
    with pytest.raises(ValueError, match="dataset.val_stride"):
        ToyImages("val", val_stride=33)


def test_train_downscales_draw_each_train_crop_at_one_of_the_listed_scales(monkeypatch):
    from flashdiff.data import toy

    asked = []
    def recorded(name, downscale=1):
        asked.append(downscale)
        return load_photo(name, downscale)

    monkeypatch.setattr(toy, "load_photo", recorded)
    mixed = ToyImages("train", downscale=2, train_downscales=[1, 2])
    asked.clear()
    items = [mixed[k] for k in range(40)]
    assert set(asked) == {1, 2}  # both scales are drawn
    assert items[0]["id"] == "toy/train@x1+2/0" and items[0]["x"].shape == (3, 32, 32)
    assert torch.equal(ToyImages("train", downscale=2, train_downscales=[1, 2])[7]["x"], items[7]["x"])
    plain, listed = ToyImages("train", downscale=2), ToyImages("train", downscale=2, train_downscales=[2])
    asked.clear()
    assert all(torch.equal(plain[k]["x"], listed[k]["x"]) and plain[k]["id"] == listed[k]["id"] for k in range(8))
    assert set(asked) == {2}  # one listed scale = the plain world, the same draws
    assert ToyImages("test", downscale=2, train_downscales=[1, 2]).crops == ToyImages("test", downscale=2).crops
    with pytest.raises(ValueError, match="dataset.train_downscales"):
        ToyImages("train", train_downscales=[])


def test_train_min_detail_redraws_only_the_flat_train_crops():
    plain, detailed = ToyImages("train", downscale=2), ToyImages("train", downscale=2, train_min_detail=0.03)
    pairs = [(plain[k]["x"], detailed[k]["x"]) for k in range(60)]
    crops = [d.permute(1, 2, 0).numpy() for _, d in pairs]
    assert min(detail(c) for c in crops) >= 0.03
    flat = [k for k, (p, _) in enumerate(pairs) if detail(p.permute(1, 2, 0).numpy()) < 0.03]
    assert flat  # the plain world has flat crops (sky, retina border) ...
    for k, (p, d) in enumerate(pairs):  # ... and only those are redrawn
        assert torch.equal(p, d) == (k not in flat)
    flat_photo = np.zeros((8, 8, 3), np.float32)
    assert detail(flat_photo) == 0.0 and detail(flat_photo + np.eye(8, dtype=np.float32)[..., None]) > 0.0
    with pytest.raises(ValueError, match="dataset.train_min_detail"):
        ToyImages("train", train_min_detail=1.5)


def test_train_augment_transposes_and_permutes_channels_on_top_of_the_same_crops():
    plain, augmented = ToyImages("train"), ToyImages("train", train_augment=["transpose", "channels"])
    for k in range(12):
        x, a = plain[k]["x"], augmented[k]["x"]
        views = [x[list(p)].transpose(1, 2) if t else x[list(p)]
                 for t in (False, True) for p in itertools.permutations(range(3))]
        assert any(torch.equal(a, v) for v in views)  # the same crop, transposed and/or channels permuted
    assert not all(torch.equal(plain[k]["x"], augmented[k]["x"]) for k in range(12))
    assert torch.equal(ToyImages("train", train_augment=[])[5]["x"], plain[5]["x"])
    with pytest.raises(ValueError, match="dataset.train_augment"):
        ToyImages("train", train_augment=["rotate"])


def test_train_extra_adds_grey_photos_to_the_train_split():
    extra = ToyImages("train", train_extra=["brick", "grass"])
    assert extra.photos == (*SPLIT_PHOTOS["train"], "brick", "grass")
    grass = load_photo("grass", 2)
    assert grass.shape == (256, 256, 3) and np.array_equal(grass[..., 0], grass[..., 2])
    grey = [x for x in (extra[k]["x"] for k in range(200)) if torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])]
    assert grey  # some train crops now come from the grey photos
    assert ToyImages("train", train_extra=[]).photos == SPLIT_PHOTOS["train"]
    with pytest.raises(ValueError, match="dataset.train_extra"):
        ToyImages("train", train_extra=["chelsea"])  # a val photo cannot be added to training
