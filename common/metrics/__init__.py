"""Evaluation metrics, one per module.

* :mod:`.fid` — Fréchet distance of feature statistics (float64, no scipy).
* :mod:`.kid` — Kernel Inception Distance (unbiased MMD^2, cubic polynomial kernel).
* :mod:`.inception` — the TF-Inception FID feature extractor, weight lookup and batched feature extraction.
* :mod:`.image_error` — per-image L1 and PSNR.
* :mod:`.ssim` — per-image SSIM (Wang et al. 2004, Gaussian window).
* :mod:`.classifier` — the attribute classifier of the StarGAN paper's protocol.
* :mod:`.texture` — whether a translation's dominant spatial frequency is the ground truth's (phase-free).
"""
from common.metrics.classifier import (
    AttributeClassifier,
    attribute_accuracy,
    load_classifier,
    predict,
    save_classifier,
    train_classifier,
)
from common.metrics.fid import feature_statistics, fid_from_features, frechet_distance
from common.metrics.image_error import RunningMean, aggregate, l1_error, mean_l1_error, mean_psnr, psnr
from common.metrics.inception import (
    FeatureExtractor,
    FIDInceptionFeatures,
    extract_features,
    fid_feature_fn,
    fid_unavailable_message,
    load_fid_inception,
    resolve_fid_weights,
)
from common.metrics.kid import kid_from_features
from common.metrics.ssim import ssim

__all__ = [
    "AttributeClassifier", "FIDInceptionFeatures", "FeatureExtractor", "RunningMean", "aggregate",
    "attribute_accuracy", "extract_features", "feature_statistics", "fid_from_features",
    "fid_feature_fn", "fid_unavailable_message", "frechet_distance", "kid_from_features", "l1_error", "load_classifier",
    "load_fid_inception", "mean_l1_error", "mean_psnr", "predict", "psnr", "resolve_fid_weights",
    "save_classifier", "ssim", "train_classifier",
]
