"""The phase-free texture measure (common.metrics.texture) and its `texture` column in `stargan evaluate`."""
import math

import pytest
import torch
from test_evaluate import _CounterfactualOracle, _Identity, _replace_g, _tiny_checkpoint

from common.data.shapes import ShapesParams, load_counterfactuals, render
from common.metrics.texture import dominant_frequency, texture_match
from stargan.evaluation.evaluate import evaluate
from stargan.evaluation.table import format_table


def _stripes(angle_deg: float, period: float, phase: float = 0.0, size: int = 64) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    a = math.radians(angle_deg)
    u = (x * math.cos(a) + y * math.sin(a)) / period + phase
    return (0.5 * torch.sign(torch.sin(2 * math.pi * u))).expand(3, size, size)[None].float()


def _scene(striped: bool, size: int = 64) -> torch.Tensor:
    scene = ShapesParams(colour="Green", striped=striped, dark_background=False, shape="circle", cx=0.5, cy=0.5,
                         radius=0.3, rotation=0.0, stripe_phase=0.3, gradient_angle=30.0, noise_seed=3)
    return (torch.from_numpy(render(scene, size)).permute(2, 0, 1).float() / 127.5 - 1)[None]


def test_the_dominant_frequency_is_the_stripes():
    freq, share = dominant_frequency(_stripes(45, 6.4))
    assert freq[0].norm().item() == pytest.approx(1 / 6.4, rel=0.12)
    assert abs(abs(freq[0, 0].item()) - abs(freq[0, 1].item())) < 0.02  # 45 degrees: equal row and column parts
    assert share.item() > 0.5
    assert dominant_frequency(torch.zeros(1, 3, 64, 64))[1].item() == 0.0  # flat: no power in the band


def test_stripes_match_at_any_phase_but_not_at_another_angle_or_period():
    truth = _stripes(45, 6.4)
    match, textured = texture_match(torch.cat([_stripes(45, 6.4, phase=0.37), _stripes(135, 6.4),
                                               _stripes(45, 4.5), _stripes(0, 6.4)]), truth.expand(4, -1, -1, -1))
    assert textured.tolist() == [True] * 4
    assert match.tolist() == [True, False, False, False]


def test_a_striped_scene_is_textured_and_a_solid_one_is_not():
    striped, solid = _scene(True), _scene(False)
    match, textured = texture_match(torch.cat([striped, solid, striped]), torch.cat([striped, solid, striped]))
    assert textured.tolist() == [True, False, True]
    # Against the striped truth, the solid scene (doing nothing where stripes should be added) does not match.
    match, textured = texture_match(solid, striped)
    assert textured.item() and not match.item()


@pytest.mark.parametrize("size", [32, 64])
def test_the_same_scene_striped_at_another_phase_matches(size):
    """The data's stripes (45 degrees, period max(4, size / 10)) drawn at another phase: a match at every phase
    (at 32x32 the peak can fall on a diagonal neighbour of the truth's bin)."""
    def scene(phase):
        params = ShapesParams(colour="Blue", striped=True, dark_background=False, shape="square", cx=0.45, cy=0.55,
                              radius=0.25, rotation=20.0, stripe_phase=phase, gradient_angle=0.0, noise_seed=5)
        return (torch.from_numpy(render(params, size)).permute(2, 0, 1).float() / 127.5 - 1)[None]

    truth = scene(0.0)
    phases = [0.1 * k for k in range(1, 10)]
    match, textured = texture_match(torch.cat([scene(p) for p in phases]), truth.expand(len(phases), -1, -1, -1))
    assert textured.all() and match.all(), match.tolist()


def test_images_too_small_for_the_band_count_as_untextured():
    match, textured = texture_match(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    assert not textured.any() and not match.any()
    with pytest.raises(ValueError, match="shapes differ"):
        texture_match(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 8, 8))


def test_evaluate_reports_texture_for_the_oracle_and_not_for_doing_nothing(tmp_path_factory, monkeypatch):
    """Through `evaluate` on shapes data (32x32: stripes of period 4 px): the ground-truth oracle draws the truth's
    stripes wherever the truth has them; doing nothing draws none where stripes are to be added (the Striped
    target, whose textured truths are the solid objects made striped) but keeps them where a striped object is
    recoloured."""
    from common.data.shapes import make_dataset

    data = tmp_path_factory.mktemp("shapes")
    make_dataset(data, n=150, size=32, seed=1)
    ckpt = _tiny_checkpoint(tmp_path_factory.mktemp("run") / "checkpoints" / "latest.pt",
                            image_dir="x/images", attr_path="x/list_attr_celeba.txt",
                            partition_path="x/list_eval_partition.txt")
    monkeypatch.delenv("STARGAN_FID_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path_factory.mktemp("hub")))
    _replace_g(monkeypatch, _CounterfactualOracle(load_counterfactuals(data)["items"]))
    oracle = evaluate(ckpt, data, out_dir=tmp_path_factory.mktemp("o"), device="cpu", batch_size=4, progress=False)
    per = oracle["counterfactual"]["per_attribute"]
    n_added = per["Striped"]["texture_n"]
    assert per["Striped"]["texture"] == 1.0 and 0 < n_added < per["Striped"]["n"]
    assert per["Dark_Background"]["texture"] == 1.0
    assert per["Striped"]["baseline_texture"] <= 0.2  # the solid input has no stripes to match
    assert f"1.000 ({per['Striped']['baseline_texture']:.3f}) n={n_added}" in format_table(oracle)
    _replace_g(monkeypatch, _Identity())
    nothing = evaluate(ckpt, data, out_dir=tmp_path_factory.mktemp("i"), device="cpu", batch_size=4, progress=False)
    per = nothing["counterfactual"]["per_attribute"]
    assert per["Striped"]["texture"] <= 0.2 and per["Striped"]["texture_n"] == n_added
    assert per["Red"]["texture"] >= 0.8  # a recoloured striped object keeps its stripes' frequency
