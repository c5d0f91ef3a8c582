"""The torchvision.io image path (common/data/decode.py) gives the PIL path's pixels within a level or two."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from common.data.decode import crop_resize_flip, decode_rgb
from common.data.images import load_rgb
from common.errors import UserError
from stargan.datasets import stargan_transform

LEVEL = 2 / 255  # one 8-bit level in [-1, 1] units


def _photo_like(seed: int, size=(178, 218)) -> Image.Image:
    """Smooth colour gradients plus noise: JPEG-compressible like a face crop, not flat."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w * 255, yy / h * 255, (xx + yy) / (w + h) * 255], axis=-1)
    noise = rng.normal(0, 20, (h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_decode_gives_the_pil_pixels(tmp_path, suffix):
    path = tmp_path / f"face{suffix}"
    _photo_like(0).save(path, quality=90) if suffix == ".jpg" else _photo_like(0).save(path)
    ours = decode_rgb(path)
    theirs = torch.from_numpy(np.array(load_rgb(path))).permute(2, 0, 1)
    assert ours.dtype == torch.uint8 and ours.shape == theirs.shape == (3, 218, 178)
    diff = (ours.int() - theirs.int()).abs()
    if suffix == ".png":
        assert int(diff.max()) == 0  # lossless
    else:  # two libjpeg builds: the IDCT may round differently
        assert int(diff.max()) <= 2 and float(diff.float().mean()) < 0.2


@pytest.mark.parametrize("image_size, crop_size, flip", [(128, 178, False), (128, 178, True), (64, None, False),
                                                         (178, 178, True), (200, None, False)])
def test_transform_matches_the_stargan_pipeline(tmp_path, image_size, crop_size, flip):
    path = tmp_path / "face.png"  # lossless, so only the resize is compared
    _photo_like(1).save(path)
    ours = crop_resize_flip(decode_rgb(path), image_size, crop_size, flip)
    theirs = stargan_transform(load_rgb(path), image_size, crop_size, flip)
    assert ours.dtype == theirs.dtype == torch.float32 and ours.shape == theirs.shape
    # torchvision's antialiased uint8 bilinear resize is PIL's algorithm; rounding may differ by one level.
    assert float((ours - theirs).abs().max()) <= LEVEL + 1e-6
    if image_size == (crop_size or 178):
        assert torch.equal(ours, theirs)  # crop and flip only: exact


def test_unsupported_formats_and_bad_files_go_through_pil(tmp_path):
    bmp = tmp_path / "face.bmp"
    _photo_like(2, (20, 24)).save(bmp)
    assert torch.equal(decode_rgb(bmp), torch.from_numpy(np.array(load_rgb(bmp))).permute(2, 0, 1))
    gray = tmp_path / "gray.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L").save(gray)
    assert decode_rgb(gray).shape == (3, 8, 8)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UserError, match="broken.jpg: cannot read image"):
        decode_rgb(bad)
