"""Config loading: strict keys, typed values, choices listed, overrides, and the shipped YAML files."""
from pathlib import Path

import pytest
import yaml

from common.config import apply_overrides, dump_yaml, from_dict, load_config, parse_override, to_dict
from common.errors import UserError
from cyclegan.config import CycleGANConfig
from stargan.families import config_classes

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path, data, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_horse2zebra_reproduces_official_defaults():
    cfg = load_config(CONFIGS / "cyclegan" / "horse2zebra.yaml", [], config_classes())
    assert isinstance(cfg, CycleGANConfig)
    assert (cfg.data.load_size, cfg.data.crop_size, cfg.data.batch_size) == (286, 256, 1)
    assert cfg.data.preprocess == "resize_and_crop" and cfg.data.flip
    assert (cfg.network.netG, cfg.network.netD, cfg.network.ngf, cfg.network.ndf) == ("resnet_9blocks", "basic", 64, 64)
    assert cfg.network.norm == "instance" and not cfg.network.dropout
    assert (cfg.network.init_type, cfg.network.init_gain) == ("normal", 0.02)
    assert cfg.loss.gan_mode == "lsgan" and cfg.loss.pool_size == 50
    assert (cfg.loss.lambda_A, cfg.loss.lambda_B, cfg.loss.lambda_identity) == (10.0, 10.0, 0.5)
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.beta2) == (0.0002, 0.5, 0.999)
    assert (cfg.optim.lr_policy, cfg.optim.n_epochs, cfg.optim.n_epochs_decay) == ("linear", 100, 100)
    # The YAML states every official default explicitly, and they equal the dataclass defaults too.
    assert to_dict(cfg)["optim"] == to_dict(CycleGANConfig())["optim"]


def test_every_shipped_config_loads():
    files = sorted(CONFIGS.rglob("*.yaml"))
    assert files
    for path in files:
        if path.parent.name == "compare":
            continue
        load_config(path, [], config_classes())


def test_unknown_key_lists_valid_keys(tmp_path):
    path = write(tmp_path, {"model": "cyclegan", "optim": {"lrr": 0.1}})
    with pytest.raises(UserError) as err:
        load_config(path, [], config_classes())
    msg = str(err.value)
    assert str(path) in msg and "optim.lrr" in msg and "lr_policy" in msg and "\n" not in msg


def test_bad_choice_lists_valid_values(tmp_path):
    path = write(tmp_path, {"model": "cyclegan", "network": {"netG": "resnet_12"}})
    with pytest.raises(UserError, match=r"network\.netG.*'resnet_9blocks'.*'unet_256'"):
        load_config(path, [], config_classes())


def test_bad_model_family(tmp_path):
    path = write(tmp_path, {"model": "pix2pixhd"})
    with pytest.raises(UserError, match="key 'model' must be one of 'cyclegan'"):
        load_config(path, [], config_classes())


def test_wrong_types_are_rejected(tmp_path):
    for bad in ({"seed": "zero"}, {"data": {"batch_size": 1.5}}, {"data": {"flip": "yes"}}, {"data": 3}):
        path = write(tmp_path, {"model": "cyclegan", **bad})
        with pytest.raises(UserError):
            load_config(path, [], config_classes())


def test_cross_field_validation(tmp_path):
    path = write(tmp_path, {"model": "cyclegan", "data": {"load_size": 100, "crop_size": 128}})
    with pytest.raises(UserError, match="crop_size"):
        load_config(path, [], config_classes())


def test_overrides_apply_and_parse_types(tmp_path):
    path = write(tmp_path, {"model": "cyclegan"})
    cfg = load_config(path, ["optim.lr=1e-4", "data.flip=false", "network.ngf=32", "name=x"], config_classes())
    assert cfg.optim.lr == pytest.approx(1e-4) and cfg.data.flip is False and cfg.network.ngf == 32
    assert cfg.name == "x"
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_override("optim.lr")
    with pytest.raises(UserError, match="unknown key 'optim.nope'"):
        load_config(path, ["optim.nope=1"], config_classes())
    with pytest.raises(UserError, match="is not a section"):
        apply_overrides({"seed": 1}, ["seed.x=1"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", [], config_classes())
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [cyclegan\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad, [], config_classes())


def test_dump_round_trip():
    cfg = CycleGANConfig()
    again = from_dict(CycleGANConfig, yaml.safe_load(dump_yaml(cfg)))
    assert again == cfg


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 10**400])
def test_non_finite_float_in_a_file_is_refused_by_key(tmp_path, value):
    path = write(tmp_path, {"model": "cyclegan", "loss": {"lambda_A": value}})
    with pytest.raises(UserError, match=r"key 'loss\.lambda_A' must be a finite number"):
        load_config(path, [], config_classes())


def test_left_out_sections_are_validated_like_written_ones(tmp_path):
    """A missing section takes its default, and an unusable default is refused by key, not later."""
    path = write(tmp_path, {"model": "stargan"})
    with pytest.raises(UserError, match="selected_attrs"):
        load_config(path, [], config_classes())
