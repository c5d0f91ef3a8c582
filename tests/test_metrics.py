"""Metrics: closed-form FID/KID checks, feature plumbing, FID-Inception layout, image errors, classifier."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import inception as tv_inception

from common.errors import UserError
from common.labels.groups import normalize_groups
from common.metrics import classifier as clf
from common.metrics import inception as inc
from common.metrics.fid import feature_statistics, fid_from_features, frechet_distance
from common.metrics.image_error import (
    PSNR_CAP_DB,
    RunningMean,
    aggregate,
    l1_error,
    mean_l1_error,
    mean_psnr,
    psnr,
)
from common.metrics.kid import kid_from_features

# ---------------------------------------------------------------------------------------------------- FID


def test_fid_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.1, 3.0, size=5), rng.uniform(0.1, 3.0, size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_fid_identical_statistics_is_zero():
    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(1))
    mu, sigma = feature_statistics(x)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    assert abs(fid_from_features(x, x)) < 1e-6


def _numpy_sqrtm_via_eig(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eig(m)
    return (v @ np.diag(np.sqrt(w.astype(complex))) @ np.linalg.inv(v)).real


def test_fid_non_diagonal_2x2_against_numpy():
    mu1, mu2 = np.array([0.5, -1.0]), np.array([1.5, 0.25])
    s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    s2 = np.array([[1.0, -0.3], [-0.3, 0.5]])
    root = _numpy_sqrtm_via_eig(s1 @ s2)
    np.testing.assert_allclose(root @ root, s1 @ s2, atol=1e-12)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)
    # Symmetric in its arguments, as a distance must be.
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-10)


def test_feature_statistics_match_numpy_and_reject_tiny_sets():
    x = np.random.default_rng(3).normal(size=(30, 4))
    mu, sigma = feature_statistics(x)
    assert mu.dtype == torch.float64
    np.testing.assert_allclose(mu.numpy(), x.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(x, rowvar=False), atol=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(x[:1])
    with pytest.raises(ValueError, match="at least 2"):
        fid_from_features(x[:1], x)


def test_fid_rank_deficient_covariances_are_finite_and_nonnegative():
    # Fewer samples than dimensions, as with a few hundred images and 2048-d features.
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(10, 64, generator=g), torch.randn(12, 64, generator=g) + 0.5
    value = fid_from_features(a, b)
    assert math.isfinite(value) and value > 0


def test_fid_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))


# ---------------------------------------------------------------------------------------------------- KID


def _brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    m, d = len(x), x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_brute_force_unbiased_estimator():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(7, 3)), rng.normal(loc=0.3, size=(7, 3))
    # One subset of all rows is a permutation of the full sets, and MMD^2 is permutation invariant.
    mean, std = kid_from_features(x, y, num_subsets=1, subset_size=100, seed=0)
    assert mean == pytest.approx(_brute_force_mmd2(x, y), rel=1e-10)
    assert std == 0.0


def test_kid_identical_sets_near_zero_and_shift_positive():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(400, 8, generator=g)
    shifted_mean, shifted_std = kid_from_features(x, x + 1.0, num_subsets=10, subset_size=400)
    assert shifted_mean > 0.5 and shifted_std >= 0
    # With the same rows on both sides the only deviation from 0 is the O(1/n) self-pair term of the
    # cross-kernel (k(x, x) ~ 8 here against ~1 off the diagonal).
    same_mean, _ = kid_from_features(x, x, num_subsets=10, subset_size=400)
    assert abs(same_mean) < 0.05 and abs(same_mean) < 0.05 * shifted_mean
    # Independent samples of one distribution: the unbiased estimator averages to ~0.
    y = torch.randn(400, 8, generator=g)
    indep_mean, _ = kid_from_features(x, y, num_subsets=10, subset_size=400)
    assert abs(indep_mean) < 0.05 * shifted_mean


def test_kid_is_seeded_and_clips_subset_size():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(40, 4)), rng.normal(size=(25, 4))
    assert kid_from_features(x, y, 5, 1000, seed=3) == kid_from_features(x, y, 5, 1000, seed=3)
    assert kid_from_features(x, y, 5, 10, seed=3) != kid_from_features(x, y, 5, 10, seed=4)
    with pytest.raises(ValueError, match="dimensions"):
        kid_from_features(x, rng.normal(size=(25, 5)))
    with pytest.raises(ValueError, match="at least 2"):
        kid_from_features(x[:1], y)


# ---------------------------------------------------------------------------------------- feature plumbing


def _tiny_extractor() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()


def test_extract_features_from_tensor_loader_and_single_images():
    extractor = _tiny_extractor()
    assert isinstance(extractor, inc.FeatureExtractor)
    images = torch.rand(10, 3, 12, 12, generator=torch.Generator().manual_seed(8)) * 2 - 1
    with torch.no_grad():
        expected = extractor(images).double()
    from_tensor = inc.extract_features(extractor, images, "cpu", batch_size=3)
    assert from_tensor.shape == (10, 4) and from_tensor.dtype == torch.float64
    torch.testing.assert_close(from_tensor, expected, rtol=1e-5, atol=1e-6)
    loader = DataLoader(TensorDataset(images, torch.zeros(10)), batch_size=4)
    torch.testing.assert_close(inc.extract_features(extractor, loader, "cpu", batch_size=7), expected,
                               rtol=1e-5, atol=1e-6)
    singles = [img for img in images]
    torch.testing.assert_close(inc.extract_features(extractor, singles, "cpu", batch_size=4), expected,
                               rtol=1e-5, atol=1e-6)
    dicts = [{"image": images[:5]}, {"image": images[5:]}]
    torch.testing.assert_close(inc.extract_features(extractor, dicts, "cpu", batch_size=50), expected,
                               rtol=1e-5, atol=1e-6)
    # The features feed FID/KID directly.
    assert fid_from_features(from_tensor, from_tensor) < 1e-6


def test_extract_features_restores_training_mode_and_rejects_empty():
    extractor = _tiny_extractor().train()
    inc.extract_features(extractor, torch.zeros(2, 3, 8, 8), "cpu", batch_size=2)
    assert extractor.training
    with pytest.raises(ValueError, match="no images"):
        inc.extract_features(extractor, [], "cpu", batch_size=2)


# ------------------------------------------------------------------------------------- FID weights lookup


@pytest.fixture
def no_weights_env(monkeypatch, tmp_path):
    monkeypatch.delenv(inc.FID_WEIGHTS_ENV, raising=False)
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


def test_resolve_fid_weights_explicit_missing_is_user_error(no_weights_env, tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(UserError, match="nope.pth"):
        inc.resolve_fid_weights(str(missing))


def test_resolve_fid_weights_order(no_weights_env, monkeypatch, tmp_path):
    assert inc.resolve_fid_weights(None) is None
    line = inc.fid_unavailable_message()
    assert "\n" not in line and inc.FID_WEIGHTS_NAME in line and inc.FID_WEIGHTS_ENV in line

    cached = no_weights_env / "checkpoints" / inc.FID_WEIGHTS_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert inc.resolve_fid_weights(None) == cached

    env_file = tmp_path / "from_env.pth"
    env_file.write_bytes(b"x")
    monkeypatch.setenv(inc.FID_WEIGHTS_ENV, str(env_file))
    assert inc.resolve_fid_weights(None) == env_file

    explicit = tmp_path / "explicit.pth"
    explicit.write_bytes(b"x")
    assert inc.resolve_fid_weights(str(explicit)) == explicit

    monkeypatch.setenv(inc.FID_WEIGHTS_ENV, str(tmp_path / "gone.pth"))
    with pytest.raises(UserError, match=inc.FID_WEIGHTS_ENV):
        inc.resolve_fid_weights(None)


def test_resolve_fid_weights_finds_other_hash_suffix_in_hub(no_weights_env):
    other = no_weights_env / "checkpoints" / "pt_inception-2015-12-05-deadbeef.pth"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"x")
    assert inc.resolve_fid_weights(None) == other


# ------------------------------------------------------------------------------------------ FID Inception


def test_fid_pool_branches_follow_the_tf_graph():
    ones = torch.ones(1, 2, 4, 4)
    # Excluding the padding keeps a constant map constant; torchvision's average would darken the border.
    for block in (inc.FIDInceptionA(2, pool_features=2), inc.FIDInceptionC(2, channels_7x7=2),
                  inc.FIDInceptionE(2, pool_kind="avg")):
        torch.testing.assert_close(block.pool(ones), ones)
    x = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(inc.FIDInceptionE(2, pool_kind="max").pool(x), F.max_pool2d(x, 3, 1, 1))


@pytest.mark.parametrize("fid_cls, tv_cls, kwargs", [
    (inc.FIDInceptionA, tv_inception.InceptionA, {"pool_features": 4}),
    (inc.FIDInceptionC, tv_inception.InceptionC, {"channels_7x7": 4}),
    (inc.FIDInceptionE, tv_inception.InceptionE, {}),
])
def test_fid_blocks_differ_from_torchvision_only_in_pooling(fid_cls, tv_cls, kwargs):
    torch.manual_seed(0)
    reference = tv_cls(6, **kwargs).eval()
    block = (fid_cls(6, pool_kind="avg", **kwargs) if fid_cls is inc.FIDInceptionE else fid_cls(6, **kwargs)).eval()
    block.load_state_dict(reference.state_dict(), strict=True)
    block.pool = lambda t: F.avg_pool2d(t, kernel_size=3, stride=1, padding=1)
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(block(x), reference(x))


def test_fid_inception_layout_roundtrip_and_forward(tmp_path):
    net = inc.build_fid_inception_net()
    reference = tv_inception.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    ours, theirs = net.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    assert ours["fc.weight"].shape == (1008, 2048)

    path = tmp_path / inc.FID_WEIGHTS_NAME
    torch.save(net.state_dict(), path)
    model = inc.load_fid_inception(path, "cpu")
    assert not model.training
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, ours[key]), key

    with torch.no_grad():
        feats = model(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(9)) * 2 - 1)
    assert feats.shape == (1, 2048) and torch.isfinite(feats).all()


def test_load_fid_inception_rejects_other_files(tmp_path):
    with pytest.raises(UserError, match="missing.pth"):
        inc.load_fid_inception(tmp_path / "missing.pth", "cpu")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(UserError, match="wrong.pth"):
        inc.load_fid_inception(wrong, "cpu")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="garbage.pth"):
        inc.load_fid_inception(garbage, "cpu")


# ------------------------------------------------------------------------------------------- image errors


def test_l1_and_psnr_known_values():
    a = torch.zeros(2, 3, 4, 4)
    b = a.clone()
    b[1] = 0.5
    torch.testing.assert_close(l1_error(a, b), torch.tensor([0.0, 0.5], dtype=torch.float64))
    values = psnr(a, b)  # data_range 2: mse 0.25 -> 10 log10(4 / 0.25)
    assert values[0].item() == PSNR_CAP_DB
    assert values[1].item() == pytest.approx(10 * math.log10(16.0))
    assert psnr(a[1], b[1], data_range=1.0).item() == pytest.approx(10 * math.log10(4.0))
    assert mean_l1_error(a, b) == (pytest.approx(0.25), 2)
    mean, n = mean_psnr(a, b)
    assert n == 2 and mean == pytest.approx((PSNR_CAP_DB + 10 * math.log10(16.0)) / 2)
    with pytest.raises(ValueError):
        l1_error(a, b[:1])


def test_aggregations():
    running = RunningMean()
    running.update(torch.tensor([1.0, 2.0]))
    running.update([3.0])
    assert running.result() == (2.0, 3)
    assert aggregate([1.0, 3.0]) == (2.0, 2)
    mean, n = aggregate([])
    assert n == 0 and math.isnan(mean)


# --------------------------------------------------------------------------------------------- classifier

GROUPS = [("exclusive", 0, 3), ("binary", 3, 4)]


def _synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The dominant colour channel is an exclusive class, overall brightness a binary attribute."""
    g = torch.Generator().manual_seed(seed)
    cls = torch.arange(n) % 3
    bright = (torch.arange(n) // 3) % 2
    images = torch.full((n, 3, 16, 16), -0.6) + 0.6 * bright.view(n, 1, 1, 1)
    images[torch.arange(n), cls] += 0.5
    images += 0.05 * torch.randn(images.shape, generator=g)
    labels = torch.cat([F.one_hot(cls, 3).float(), bright.float().unsqueeze(1)], dim=1)
    return images.clamp(-1, 1), labels


def test_classifier_learns_separable_data_and_roundtrips(tmp_path):
    images, labels = _synthetic(64, seed=0)
    dataset = [(images[i], labels[i].tolist()) for i in range(len(images))]
    records = []
    model, history = clf.train_classifier(dataset, GROUPS, epochs=8, batch_size=16, lr=3e-3, seed=0,
                                          device="cpu", progress=records.append, width=8)
    assert len(history) == 8 and records == history
    assert history[-1]["loss"] < history[0]["loss"]

    test_images, test_labels = _synthetic(48, seed=1)
    pred = clf.predict(model, test_images)
    assert pred.shape == (48, 4)
    assert torch.all(pred[:, :3].sum(dim=1) == 1)  # exclusive groups come back one-hot
    report = clf.attribute_accuracy(pred, test_labels, GROUPS)
    assert report["overall"]["accuracy"] > 0.9, report

    path = tmp_path / "sub" / "classifier.pt"
    clf.save_classifier(path, model, {"dataset": "synthetic", "val_accuracy": report["overall"]["accuracy"]})
    loaded, meta = clf.load_classifier(path, "cpu")
    assert meta["label_dim"] == 4 and meta["image_size"] == 16 and meta["width"] == 8
    assert meta["groups"] == GROUPS and meta["dataset"] == "synthetic"
    assert torch.equal(clf.predict(loaded, test_images), pred)
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())


def test_classifier_training_is_seeded_and_leaves_global_rng_alone():
    images, labels = _synthetic(12, seed=2)
    dataset = list(zip(images, labels))
    state = torch.get_rng_state()
    m1, h1 = clf.train_classifier(dataset, GROUPS, epochs=1, batch_size=4, lr=1e-3, seed=5, device="cpu", width=4)
    assert torch.equal(torch.get_rng_state(), state)
    m2, h2 = clf.train_classifier(dataset, GROUPS, epochs=1, batch_size=4, lr=1e-3, seed=5, device="cpu", width=4)
    assert h1 == h2
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(v1, v2), k


def test_attribute_accuracy_on_handmade_tensors():
    groups = [("binary", 0, 2), ("exclusive", 2, 5)]
    target = torch.tensor([
        [1, 0, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [1, 1, 0, 0, 1],
        [0, 1, 0, 0, 0],  # no class in the exclusive group: not scored there
    ], dtype=torch.float32)
    pred = torch.tensor([
        [1, 1, 1, 0, 0],  # attr1 wrong; class right
        [0, 0, 1, 0, 0],  # class wrong (0 instead of 1)
        [1, 1, 0, 0, 1],  # all right
        [1, 1, 0, 1, 0],  # attr0 wrong
    ], dtype=torch.float32)
    report = clf.attribute_accuracy(pred, target, groups, names=["a", "b", "c0", "c1", "c2"])
    binary, exclusive = report["groups"]
    assert (binary["accuracy"], binary["n"], binary["decisions"]) == (6 / 8, 4, 8)
    assert (exclusive["accuracy"], exclusive["n"], exclusive["decisions"]) == (2 / 3, 3, 3)
    assert report["overall"] == {"accuracy": 8 / 11, "n": 4, "correct": 8, "decisions": 11}
    by_name = {row["name"]: row for row in report["attributes"]}
    assert (by_name["a"]["accuracy"], by_name["a"]["n"]) == (3 / 4, 4)
    assert (by_name["b"]["accuracy"], by_name["b"]["n"]) == (3 / 4, 4)
    assert (by_name["c0"]["accuracy"], by_name["c0"]["n"]) == (1.0, 1)
    assert (by_name["c1"]["accuracy"], by_name["c1"]["n"]) == (0.0, 1)
    assert (by_name["c2"]["accuracy"], by_name["c2"]["n"]) == (1.0, 1)

    empty = clf.attribute_accuracy(torch.zeros(2, 3), torch.zeros(2, 3), [("exclusive", 0, 3)])
    assert empty["overall"]["accuracy"] is None and empty["attributes"][0]["n"] == 0


def test_classifier_loss_leaves_rows_without_a_class_out():
    groups = [("binary", 0, 1), ("binary", 1, 2), ("exclusive", 2, 5)]
    target = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 0, 0, 1], [1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=torch.float32)
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    loss = clf.classifier_loss(logits, target, groups)
    expected = (F.binary_cross_entropy_with_logits(logits[:, 0], target[:, 0])
                + F.binary_cross_entropy_with_logits(logits[:, 1], target[:, 1])
                + F.cross_entropy(logits[:3, 2:5], target[:3, 2:5].argmax(dim=1)))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[3, 2:5] == 0)  # the row without a class gets no exclusive gradient
    # A batch with no labelled row of the group: that group adds exactly nothing.
    assert clf.classifier_loss(logits[3:], target[3:], [("exclusive", 2, 5)]).item() == 0.0


def test_classifier_loss_of_a_multi_column_binary_group():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 5, generator=gen)
    target = (torch.rand(6, 5, generator=gen) > 0.5).float()
    target[:, 3:] = F.one_hot(torch.tensor([0, 1, 1, 0, 1, 0]), 2).float()
    loss = clf.classifier_loss(logits, target, [("binary", 0, 3), ("exclusive", 3, 5)])
    # A k-column binary group: BCE summed over its columns, averaged over the images (= k x the mean BCE).
    per_image = F.binary_cross_entropy_with_logits(logits[:, :3], target[:, :3], reduction="none").sum(dim=1)
    expected = per_image.mean() + F.cross_entropy(logits[:, 3:], target[:, 3:].argmax(dim=1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert clf.classifier_loss(logits, target, [("binary", 0, 3)]).item() == pytest.approx(
        3 * F.binary_cross_entropy_with_logits(logits[:, :3], target[:, :3]).item(), rel=1e-6)
    # Grouping binary columns does not change the loss.
    split = [("binary", 0, 1), ("binary", 1, 2), ("binary", 2, 3), ("exclusive", 3, 5)]
    assert clf.classifier_loss(logits, target, split).item() == pytest.approx(loss.item(), rel=1e-6)


def test_default_groups_are_one_binary_group_per_column():
    model = clf.AttributeClassifier(3, 8, width=4)
    assert model.groups == clf.default_groups(3) == [("binary", 0, 1), ("binary", 1, 2), ("binary", 2, 3)]
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=torch.float32)
    # label_dim times the BCE averaged over every image and column.
    assert clf.classifier_loss(logits, target, model.groups).item() == pytest.approx(
        3 * F.binary_cross_entropy_with_logits(logits, target).item(), rel=1e-6)


def test_groups_are_validated():
    with pytest.raises(ValueError, match="overlaps"):
        normalize_groups([("binary", 0, 2), ("binary", 1, 3)], 3)
    with pytest.raises(ValueError, match="outside"):
        normalize_groups([("binary", 0, 4)], 3)
    with pytest.raises(ValueError, match="kind"):
        normalize_groups([("multi", 0, 3)], 3)


def test_load_classifier_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="absent.pt"):
        clf.load_classifier(tmp_path / "absent.pt", "cpu")
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(UserError, match="other.pt"):
        clf.load_classifier(other, "cpu")
    model = clf.AttributeClassifier(4, 16, width=4, groups=GROUPS)
    path = tmp_path / "mismatch.pt"
    clf.save_classifier(path, model, {})
    payload = torch.load(path, weights_only=True)
    payload["meta"]["width"] = 8
    torch.save(payload, path)
    with pytest.raises(UserError, match="mismatch.pt"):
        clf.load_classifier(path, "cpu")


def test_save_classifier_rejects_non_plain_meta(tmp_path):
    model = clf.AttributeClassifier(2, 8, width=4)
    with pytest.raises(ValueError, match="plain data"):
        clf.save_classifier(tmp_path / "c.pt", model, {"path": tmp_path})
    with pytest.raises(ValueError, match="contradicts"):
        clf.save_classifier(tmp_path / "c.pt", model, {"label_dim": 3})
