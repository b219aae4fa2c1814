"""Decoding the authors' way, the memory-mapped decode cache and the torch Dataset/loader."""
from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ctranscnn.data.cache as cache
from ctranscnn.data.dataset import ImageDataset, build_loader
from ctranscnn.data.errors import DataError
from ctranscnn.data.transforms import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig, decode, normalize
from test_data_formats import grey_png, quiet_load, write_chestmnist, write_nih, write_tongue


def test_grey_png_resized_with_pillow_bicubic(tmp_path):
    grey_png(tmp_path / "a.png", 7, size=(50, 40))
    out = decode(tmp_path / "a.png", PreprocessConfig(size=32))
    expected = np.asarray(Image.open(tmp_path / "a.png").resize((32, 32), Image.Resampling.BICUBIC))
    assert out.shape == (32, 32, 1) and np.array_equal(out[..., 0], expected)
    assert decode(tmp_path / "a.png", PreprocessConfig(size=(20, 30))).shape == (20, 30, 1)  # (h, w), aspect not kept


def test_sixteen_bit_png(tmp_path):
    a = (np.arange(24 * 16).reshape(24, 16) * 150 + 1000).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode.startswith("I")
    shift = decode(tmp_path / "d.png", PreprocessConfig(size=(24, 16)))[..., 0]
    assert np.array_equal(shift, (a >> 8).astype(np.uint8))  # the high byte, as cv2/libpng give
    stretched = decode(tmp_path / "d.png", PreprocessConfig(size=(24, 16), sixteen_bit="minmax"))[..., 0]
    lo, hi = int(a.min()), int(a.max())
    assert np.array_equal(stretched, np.round((a.astype(float) - lo) * 255 / (hi - lo)).astype(np.uint8))


def test_rgba_and_grey_content_and_jpeg(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 7
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    assert np.array_equal(decode(tmp_path / "c.png", PreprocessConfig(size=8)), rgba[..., :3])  # alpha dropped
    rgba[..., :3] = 90  # grey content in an RGBA file (as some NIH PNGs) is stored as one channel
    Image.fromarray(rgba, "RGBA").save(tmp_path / "g.png")
    assert np.array_equal(decode(tmp_path / "g.png", PreprocessConfig(size=8)), np.full((8, 8, 1), 90, np.uint8))
    Image.fromarray(np.full((16, 12), 77, np.uint8)).save(tmp_path / "j.jpg")
    out = decode(tmp_path / "j.jpg", PreprocessConfig(size=(16, 12)))
    assert out.shape == (16, 12, 1) and np.array_equal(out[..., 0], np.asarray(Image.open(tmp_path / "j.jpg")))


def test_normalize_by_hand():
    cfg = PreprocessConfig(size=2)
    grey = np.array([[[0], [100]], [[200], [255]]], np.uint8)
    x = normalize(grey, cfg)
    assert x.shape == (3, 2, 2) and x.dtype == torch.float32
    for c in range(3):
        assert x[c, 0, 1].item() == pytest.approx((100 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], abs=1e-5)
    assert torch.equal(normalize(grey, cfg, flip=True), x.flip(-1))
    rgb = np.stack([np.full((2, 2), v, np.uint8) for v in (10, 20, 30)], axis=-1)
    assert normalize(rgb, cfg)[2, 1, 1].item() == pytest.approx((30 - IMAGENET_MEAN[2]) / IMAGENET_STD[2], abs=1e-5)


def test_preprocess_config_names_bad_fields():
    with pytest.raises(ValueError, match="preprocess.resample"):
        PreprocessConfig(resample="cubic")
    with pytest.raises(ValueError, match="unknown preprocess field"):
        PreprocessConfig.from_dict({"size": 64, "colour": True})
    assert PreprocessConfig.from_dict({"size": [48, 64]}).hw == (48, 64)


@pytest.fixture
def nih(tmp_path):
    return quiet_load("nih", write_nih(tmp_path / "nih"), split="official")


def test_cached_items_equal_decoded_items(nih, tmp_path):
    cfg = PreprocessConfig(size=24)
    fresh = ImageDataset(nih["train"], cfg, train=False)
    cached = ImageDataset(nih["train"], cfg, train=False, cache_dir=tmp_path / "cache", workers=1)
    for i in range(len(fresh)):
        (a, ya, ia), (b, yb, ib) = fresh[i], cached[i]
        assert torch.equal(a, b) and torch.equal(ya, yb) and ia == ib == i
        assert ya.tolist() == nih["train"].labels[i].tolist()


def test_cache_hit_across_instances_and_rebuild_on_change(nih, tmp_path, monkeypatch):
    calls = []
    real = cache.decode
    monkeypatch.setattr(cache, "decode", lambda src, cfg: calls.append(src) or real(src, cfg))
    cfg, cache_dir, records = PreprocessConfig(size=16), tmp_path / "cache", nih["train"]
    first = ImageDataset(records, cfg, train=False, cache_dir=cache_dir, workers=1)
    assert len(calls) == len(records)
    second = ImageDataset(records, cfg, train=False, cache_dir=cache_dir, workers=1)
    assert second.cache_file == first.cache_file and len(calls) == len(records)  # hit: nothing decoded
    grey_png(records.paths[0], 99, size=(32, 32))  # an input changes: new content, new mtime
    os.utime(records.paths[0], ns=(10**18, 10**18))
    third = ImageDataset(records, cfg, train=False, cache_dir=cache_dir, workers=1)
    assert third.cache_file != first.cache_file and len(calls) == 2 * len(records)
    assert np.array_equal(third.image(0), decode(records.paths[0], cfg))
    assert ImageDataset(records, PreprocessConfig(size=20), train=False, cache_dir=cache_dir).cache_file.name.count("20x20")


def test_failed_build_caches_nothing_and_names_every_bad_file(nih, tmp_path):
    records = nih["train"]
    records.paths[1].write_bytes(b"\x89PNG\r\n\x1a\n not really")
    records.paths[2].write_bytes(b"")
    with pytest.raises(DataError) as e:
        ImageDataset(records, PreprocessConfig(size=16), train=False, cache_dir=tmp_path / "cache", workers=1)
    assert [p.split(":")[0] for p in e.value.problems] == [str(records.paths[1]), str(records.paths[2])]
    assert all("unreadable or corrupt image" in p for p in e.value.problems)
    assert not list((tmp_path / "cache").glob("*.npy"))


def test_colour_images_force_three_channels(tmp_path):
    root, lists = write_tongue(tmp_path / "t")
    records = quiet_load("list", root, lists=lists)["train"]
    grey_png(records.paths[0], 5, size=(30, 24))  # one grey image among colour ones
    ds = ImageDataset(records, PreprocessConfig(size=12), train=False, cache_dir=tmp_path / "cache", workers=1)
    stored = np.load(ds.cache_file)
    assert stored.shape == (3, 12, 12, 3)
    assert np.array_equal(stored[0], np.repeat(decode(records.paths[0], ds.cfg), 3, axis=2))
    assert np.array_equal(stored[1], decode(records.paths[1], ds.cfg))


def _build(args):
    records, cfg, cache_dir = args
    return str(cache.build_cache(records, cfg, cache_dir, workers=1))


def test_pool_and_concurrent_builders_agree(nih, tmp_path):
    records, cfg = nih["train"], PreprocessConfig(size=16)
    serial = np.load(cache.build_cache(records, cfg, tmp_path / "one", workers=1))
    pooled = np.load(cache.build_cache(records, cfg, tmp_path / "two", workers=2))
    assert np.array_equal(serial, pooled)
    with mp.get_context("fork").Pool(2) as pool:  # two processes race to build the same cache
        paths = pool.map(_build, [(records, cfg, tmp_path / "race")] * 2)
    assert paths[0] == paths[1] and np.array_equal(np.load(paths[0]), serial)
    assert [p.name for p in (tmp_path / "race").iterdir() if not p.name.endswith(".lock")] == [Path(paths[0]).name]


def test_chestmnist_arrays_through_the_cache(tmp_path):
    path = write_chestmnist(tmp_path / "chestmnist.npz")
    test = quiet_load("chestmnist", path)["test"]
    ds = ImageDataset(test, PreprocessConfig(size=32), train=False, cache_dir=tmp_path / "cache")
    expected = np.asarray(Image.fromarray(test.pixels[2]).resize((32, 32), Image.Resampling.BICUBIC))
    assert np.array_equal(ds.image(2)[..., 0], expected)


def test_seeded_loader_gives_the_same_flips(nih, tmp_path):
    ds = ImageDataset(nih["train"], PreprocessConfig(size=16), train=True, cache_dir=tmp_path / "c", workers=1)
    plain = ImageDataset(nih["train"], PreprocessConfig(size=16), train=False, cache_dir=tmp_path / "c")

    def batches(seed):
        return [b for b in build_loader(ds, batch_size=3, shuffle=True, seed=seed, num_workers=2)]

    a, b = batches(1), batches(1)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[2], y[2]) for x, y in zip(a, b))
    flipped = [torch.equal(img, plain[int(i)][0].flip(-1)) for x, _, idx in a for img, i in zip(x, idx)]
    unflipped = [torch.equal(img, plain[int(i)][0]) for x, _, idx in a for img, i in zip(x, idx)]
    assert all(f or u for f, u in zip(flipped, unflipped)) and any(flipped)
    assert sorted(int(i) for _, _, idx in a for i in idx) == list(range(len(ds)))
