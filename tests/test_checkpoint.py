"""Checkpoint writing/reading: atomic, keep-last-N, latest, safe loading with explicit errors."""
import logging
import os
import stat

import pytest
import torch

from common.checkpoint import (
    CheckpointManager,
    atomic_save,
    list_checkpoints,
    load_checkpoint,
    new_checkpoint,
    newest_loadable,
)
from common.errors import UserError
from common.rng import capture_rng_state, restore_rng_state, seed_everything


def _ckpt(step):
    return new_checkpoint("cyclegan", {"seed": 0}, {"G_A": {"w": torch.full((2,), float(step))}},
                          counters={"global_step": step}, rng=[capture_rng_state()])


def test_keep_last_and_latest(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in (1, 2, 3):
        manager.save(_ckpt(step), step)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3]
    latest = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    assert latest["counters"]["global_step"] == 3
    # A run folder resolves to its latest checkpoint.
    assert load_checkpoint(tmp_path)["counters"]["global_step"] == 3
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_atomic_save_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "x.pt"
    atomic_save({"a": torch.ones(1)}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_save({"a": Boom()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(1))
    assert sorted(os.listdir(tmp_path)) == ["x.pt"]


def test_checkpoints_get_the_permissions_of_a_plain_open(tmp_path):
    # mkstemp alone would make every checkpoint 0600 while the run's other files are 0644.
    old_mask = os.umask(0o022)
    try:
        plain = tmp_path / "plain.txt"
        with open(plain, "w"):
            pass
        saved = atomic_save({"a": torch.ones(1)}, tmp_path / "x.pt")
        managed = CheckpointManager(tmp_path, keep_last=1).save(_ckpt(1), 1)
    finally:
        os.umask(old_mask)
    expected = stat.S_IMODE(plain.stat().st_mode)
    assert expected == 0o644
    for path in (saved, managed, tmp_path / "checkpoints" / "latest.pt"):
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_rng_state_survives_weights_only_round_trip(tmp_path):
    import random

    import numpy as np

    seed_everything(3)
    state = capture_rng_state()
    atomic_save({"rng": state}, tmp_path / "r.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    seed_everything(99)
    restore_rng_state(torch.load(tmp_path / "r.pt", weights_only=True)["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_load_errors_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(UserError, match="garbage.pt: not a readable PyTorch file"):
        load_checkpoint(garbage)
    unsafe = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), unsafe)  # a pickled module: weights_only must refuse it
    with pytest.raises(UserError, match="refused to load") as err:
        load_checkpoint(unsafe)
    assert "\n" not in str(err.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model.1.weight": torch.zeros(1)}, foreign)
    with pytest.raises(UserError, match="import-official"):
        load_checkpoint(foreign)


def test_newest_loadable_skips_a_damaged_newest(tmp_path, caplog):
    manager = CheckpointManager(tmp_path, keep_last=5)
    manager.save(_ckpt(1), 1)
    manager.save(_ckpt(2), 2)
    (tmp_path / "checkpoints" / "ckpt-000000002.pt").write_bytes(b"torn")
    with caplog.at_level(logging.WARNING):
        path, ckpt = newest_loadable(tmp_path)
    assert ckpt["counters"]["global_step"] == 1 and path.name == "ckpt-000000001.pt"
    assert "skipping unreadable checkpoint" in caplog.text
