"""Names of the files and folders of a comparison folder ``<out>`` (see docs/compare.md).

They are part of the on-disk format: an existing comparison folder is continued by matching them, so they do
not change."""
from __future__ import annotations

DATA_DIR = "data"  # generated shapes data
DOMAINS_DIR = "domains"  # domains/{train,test}/<domain>/
PAIRS_DIR = "pairs"  # pairs/<A>2<B>/{trainA,trainB,testA,testB}/
MANIFEST_FILE = "manifest.json"  # in DOMAINS_DIR; written last, marks the data as complete
CLASSIFIER_FILE = "classifier.pt"
PLAN_FILE = "plan.json"
TIMING_FILE = "timing.json"  # in each run folder
RESULTS_FILE = "results.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
GRIDS_DIR = "grids"


def pair_name(a: str, b: str) -> str:
    """The name of the pair (A, B): its CycleGAN's run name, its pair view and its key in results.json."""
    return f"{a}2{b}"
