"""The plain-text summary of an evaluation's metrics: two tables of at most about 140 columns (what the classifier
says, and the errors against ground truth), then one line per overall figure."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from common.tables import fmt_count, fmt_number, text_table

SECTIONS = ("target_accuracy", "preserve_accuracy", "real_accuracy", "counterfactual", "cycle_reconstruction",
            "fid", "nuisance")
ACCURACIES = ("target_accuracy", "preserve_accuracy", "real_accuracy")

# Where a section keeps its per-attribute blocks, when not under "per_attribute".
PER_ATTRIBUTE_KEY = {"nuisance": "per_target"}

Block = Mapping[str, Any]
Pick = Callable[[str], Block | None]  # section name -> the row's block of that section
Cells = Callable[[Pick], list[str]]


def mask_note(metrics: Mapping[str, Any]) -> str:
    """The header's note on how the attention mask composed: thresholded, and snapped to the input's edges
    (empty for a soft mask or none)."""
    if not metrics.get("mask_hard"):
        return ""
    radius = metrics.get("mask_snap_radius")
    fill = ", the pixels it opened filled from their neighbours" if radius and metrics.get("mask_snap_fill") else ""
    return ", the attention mask thresholded at 0.5" + (f" and snapped to the input's edges (radius {radius}{fill})"
                                                          if radius else "")


def _accuracy(block: Block | None) -> str:
    return fmt_count(block["accuracy"], block.get("n", 0)) if block else "-"


def _nuisance_lines(nuisance: Block) -> list[str]:
    """Every nuisance group over all translations, beside the classifier's accuracy on the real images."""
    overall, real = nuisance.get("overall") or {}, nuisance.get("real") or {}
    parts = [f"{g} {fmt_number((overall.get(g) or {}).get('accuracy'))} "
             f"({fmt_number((real.get(g) or {}).get('accuracy'))})" for g in nuisance.get("groups") or {}]
    n = next(iter(overall.values()), {}).get("n", 0)
    n_real = next(iter(real.values()), {}).get("n", 0)
    return [f"kept, not conditioned on: over {n} translations (in brackets: the classifier on the {n_real} real "
            "images, the ceiling)", "  " + ", ".join(parts)]


def _counterfactual_cells(cf: Block | None, with_mask: bool) -> list[str]:
    cf = cf or {}
    if not cf.get("n"):
        return ["-"] * (5 if with_mask else 4)
    ratio = f" x{cf['l1_ratio']:.2f}" if cf.get("l1_ratio") is not None else ""
    cells = [f"{fmt_number(cf['l1'])} ({fmt_number(cf['baseline_l1'])}){ratio} n={cf['n']}",
             f"{fmt_number(cf.get('l1_changed'))} / {fmt_number(cf.get('l1_kept'))}"]
    if with_mask:
        cells.append(f"{fmt_number(cf.get('mask_changed'))} / {fmt_number(cf.get('mask_kept'))}")
    cells.append(f"{fmt_number(cf['psnr'], 2)} ({fmt_number(cf['baseline_psnr'], 2)}) n={cf['n']}")
    # Only translations whose truth is periodic count; "-" where none is.
    texture_n = cf.get("texture_n", cf["n"])
    if cf.get("texture") is None:
        return cells + ["-"]
    return cells + [f"{fmt_number(cf['texture'])} ({fmt_number(cf.get('baseline_texture'))}) n={texture_n}"]


def _table(metrics: Mapping[str, Any], header: list[str], cells: Cells) -> str:
    """One row per attribute and an overall row; ``cells(pick)`` gives a row's cells."""
    def pick_attribute(a: str) -> Pick:
        return lambda key: ((metrics.get(key) or {}).get(PER_ATTRIBUTE_KEY.get(key, "per_attribute")) or {}).get(a)

    rows = [header] + [[a, *cells(pick_attribute(a))] for a in metrics["attributes"]]
    rows.append(["overall", *cells(lambda key: (metrics.get(key) or {}).get("overall"))])
    return text_table(rows)


def format_table(metrics: Mapping[str, Any]) -> str:
    """A plain-text summary of :func:`stargan.evaluation.evaluate.evaluate`'s metrics: one row per attribute and
    an overall row, each number with its sample count. The first table has what the classifier says (with
    nuisance measures, the first nuisance group, the shapes dataset's ``Shape``, gets a "kept" column; every
    group gets a line below) and the cycle error; the second the errors against ground truth (with an attention
    mask, its mean where the truth changes and where it must stay) and FID."""
    sections = {k: metrics.get(k) for k in SECTIONS}
    nuisance = sections["nuisance"] or {}
    kept = next(iter(nuisance.get("groups") or {}), None)
    with_mask = "mask_kept" in ((sections["counterfactual"] or {}).get("overall") or {})

    def judged(pick: Pick) -> list[str]:
        cells = [_accuracy(pick(k)) for k in ACCURACIES] if sections["target_accuracy"] else []
        if kept:
            cells.append(_accuracy((pick("nuisance") or {}).get(kept)))
        cyc = pick("cycle_reconstruction") or {}
        return cells + [f"{fmt_number(cyc.get('l1'))} (n={cyc.get('n', 0)})"]

    def truth(pick: Pick) -> list[str]:
        cells = _counterfactual_cells(pick("counterfactual"), with_mask) if sections["counterfactual"] else []
        if sections["fid"]:
            f = pick("fid") or {}
            cells.append(f"{fmt_number(f.get('fid'), 2)} (n={f.get('n_fake', 0)})")
        return cells

    header = ["attribute"] + (["target acc", "preserve acc", "real acc"] if sections["target_accuracy"] else [])
    header += ([f"{kept} kept"] if kept else []) + ["cycle L1"]
    counts = metrics.get("counts", {})
    lines = [f"{metrics.get('dataset', '')}: {counts.get('test_images', 0)} test images x "
             f"{counts.get('targets_per_image', 0)} targets = {counts.get('translations', 0)} translations "
             f"({metrics.get('split', '')}, {metrics.get('image_size')}px"
             f"{mask_note(metrics)})",
             _table(metrics, header, judged)]
    truth_header = ["attribute"]
    if sections["counterfactual"]:
        truth_header += ["cf L1 (do-nothing) ratio", "cf L1 changed / kept",
                         *(["mask changed / kept"] if with_mask else []), "cf PSNR (do-nothing)",
                         "texture (do-nothing)"]
    if sections["fid"]:
        truth_header += ["FID"]
    if len(truth_header) > 1:
        lines += ["", _table(metrics, truth_header, truth)]
    fid = (sections["fid"] or {}).get("overall")
    if fid:
        kid = (f", KID {fmt_number(fid.get('kid'), 4)} +- {fmt_number(fid.get('kid_std'), 4)}"
               if fid.get("kid") is not None else "")
        lines.append(f"FID (all translations vs {fid['n_real']} real) {fmt_number(fid.get('fid'), 2)} "
                     f"(n={fid['n_fake']}){kid}")
    if kept:
        lines += _nuisance_lines(nuisance)
    lines += [f"{key}: skipped ({reason})" for key, reason in (metrics.get("skipped") or {}).items() if reason]
    return "\n".join(lines)
