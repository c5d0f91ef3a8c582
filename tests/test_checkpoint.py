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


def test_latest_is_written_first_and_is_what_a_resume_takes(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=3)
    for step in (20, 30, 40):
        manager.save(_ckpt(step), step)
    folder = tmp_path / "checkpoints"
    assert (folder / "latest.pt").samefile(folder / "ckpt-000000040.pt")  # one file, two names
    # Numbered steps past latest.pt's (an abandoned continuation, in a folder an older version wrote): the
    # step number must not win over latest.pt, the state written last.
    atomic_save(_ckpt(25), folder / "latest.pt")
    path, ckpt = newest_loadable(tmp_path)
    assert path.name == "latest.pt" and ckpt["counters"]["global_step"] == 25


def test_continue_from_an_older_checkpoint_moves_the_later_ones_aside(tmp_path, caplog):
    from common.checkpoint import continue_from, run_dir_of

    manager = CheckpointManager(tmp_path, keep_last=5)
    for step in (20, 30, 40):
        manager.save(_ckpt(step), step)
    folder = tmp_path / "checkpoints"
    with caplog.at_level(logging.INFO):
        aside = continue_from(tmp_path, folder / "ckpt-000000020.pt", 20)
    assert "continuing from step 20" in caplog.text and "steps 30, 40" in caplog.text
    assert [s for s, _ in list_checkpoints(tmp_path)] == [20]
    assert load_checkpoint(tmp_path)["counters"]["global_step"] == 20  # latest.pt is the resumed state
    assert sorted(p.name for p in aside.iterdir()) == ["ckpt-000000030.pt", "ckpt-000000040.pt", "latest.pt"]
    assert load_checkpoint(aside / "latest.pt")["counters"]["global_step"] == 40
    # Continuing from the head moves nothing.
    assert continue_from(tmp_path, folder / "latest.pt", 20) is None
    assert len(list(folder.glob("abandoned-*"))) == 1
    # An abandoned checkpoint still belongs to its run: resuming it swaps the branches.
    assert run_dir_of(aside / "ckpt-000000030.pt") == run_dir_of(folder / "latest.pt") == tmp_path
    assert run_dir_of(tmp_path / "model.pt") == tmp_path
    # Nothing to move: the old head (step 20) stays as ckpt-20, on the way to 30.
    assert continue_from(tmp_path, aside / "ckpt-000000030.pt", 30) is None
    assert load_checkpoint(tmp_path)["counters"]["global_step"] == 30
    assert [s for s, _ in list_checkpoints(tmp_path)] == [20, 30]


def test_disk_full_while_saving_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import shutil

    from common import files

    manager = CheckpointManager(tmp_path, keep_last=2)
    manager.save(_ckpt(1), 1)
    real_save = torch.save

    def full_disk(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 64 vs 0\nframe #0: ...")

    monkeypatch.setattr(torch, "save", full_disk)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: usage._replace(free=4096))
    latest = tmp_path / "checkpoints" / "latest.pt"
    with pytest.raises(UserError) as err:
        manager.save(_ckpt(2), 2)
    assert str(err.value) == f"no space left on the device writing {latest}"
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: usage._replace(free=50 << 30))
    with pytest.raises(UserError) as err:
        manager.save(_ckpt(2), 2)
    assert str(err.value) == (f"cannot write {latest}: "
                              "[enforce fail at inline_container.cc:672] unexpected pos 64 vs 0")
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(latest)["counters"]["global_step"] == 1
    assert sorted(p.name for p in latest.parent.iterdir()) == ["ckpt-000000001.pt", "latest.pt"]


def test_unwritable_or_full_folder_is_one_line(tmp_path, monkeypatch):
    import errno

    from common.files import write_text_atomic

    with pytest.raises(UserError, match=r"cannot write .*missing/x.txt: No such file or directory$"):
        write_text_atomic(tmp_path / "missing" / "x.txt", "x")

    def enospc(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", enospc)
    with pytest.raises(UserError, match=r"^no space left on the device writing .*y.txt$"):
        write_text_atomic(tmp_path / "y.txt", "y")
    assert os.listdir(tmp_path) == []  # the temp file went too


class _RunsCode:
    """Pickles as a call of ``os.system``: a code-executing checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_code_executing_pickle_is_refused_as_unsafe_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "stargan-lib", "nets": _RunsCode(marker)}, path)
    with pytest.raises(UserError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path}: refused to load: it pickles posix.system") or "os.system" in message
    assert "unsafe" in message and "\n" not in message and "corrupt" not in message
    assert not marker.exists()


@pytest.mark.parametrize("missing", ["config", "nets"])
def test_checkpoint_without_a_required_section_names_it(tmp_path, missing):
    ckpt = _ckpt(1)
    del ckpt[missing]
    path = atomic_save(ckpt, tmp_path / "x.pt")
    with pytest.raises(UserError, match=f"x.pt: damaged checkpoint: section '{missing}' is missing") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)
