"""Shared by the attention-mask composition tests (the snap, the fill): a red square on a dark noisy image with a
disk around it one ring too wide, as the threshold cuts the hole of a background flip, and the check that export
and the editor carry a mask option."""
from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import torch
from conftest import run_cli, translate_pngs

from stargan.editor.session import EditorSession


def square_and_disk(size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(image (1, 3, size, size), square, disk)``: the square's and the disk's pixels as (size, size) bools; the
    disk holds the square with a ring of background 0-3.5 pixels wide around it. Same pixels on every call."""
    g = torch.Generator().manual_seed(0)
    image = torch.full((1, 3, size, size), -0.6)
    image[..., 10:22, 10:22] = torch.tensor([0.8, -0.2, -0.4]).view(1, 3, 1, 1)
    image += 0.02 * torch.randn(1, 3, size, size, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disk = (yy - 15.5) ** 2 + (xx - 15.5) ** 2 <= 9.5 ** 2
    square = torch.zeros(size, size, dtype=torch.bool)
    square[10:22, 10:22] = True
    assert (square & ~disk).sum() == 0 and (disk & ~square).sum() > 100
    return image, square, disk


def mask_closed_on(region: torch.Tensor) -> torch.Tensor:
    """The tanh output's mask channel, (size, size): mask 0.1 on ``region``, 0.9 elsewhere."""
    return torch.where(region, -0.8, 0.8)


def assert_export_and_editor_carry(run: Path, flags: list[str], editor_options: dict, reference: Path, inputs: Path,
                                   tmp_path: Path, target: list[str]) -> dict:
    """``stargan export`` of ``run`` with the mask ``flags``, and ``run`` opened in the editor with
    ``editor_options`` (the same flags as :meth:`EditorSession.open` arguments), both translate ``inputs`` as
    ``reference`` (a run trained with those settings) does, and the editor's command line shows the flags. Returns
    the exported config."""
    run_cli(["export", "--checkpoint", run, "--out", tmp_path / "export", *flags])
    expected = translate_pngs(reference, inputs, tmp_path / "reference", *target)
    assert translate_pngs(tmp_path / "export", inputs, tmp_path / "exported", *target) == expected
    image = sorted(inputs.glob("*.png"))[0]
    with closing(EditorSession.open(run, "cpu", **editor_options)) as session:
        options = {"target_vector": target[1]}
        assert f" {' '.join(flags)} " in f" {session.command(str(image), options)} "
        assert session.save_result(session.translate(image, options), image.name).read_bytes() == expected[image.name]
    return json.loads((tmp_path / "export" / "export.json").read_text())["config"]
