"""The plain-text summary of an evaluation's metrics."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from common.tables import fmt_count, fmt_number, text_table

SECTIONS = ("target_accuracy", "preserve_accuracy", "real_accuracy", "counterfactual", "cycle_reconstruction",
            "fid")
ACCURACIES = ("target_accuracy", "preserve_accuracy", "real_accuracy")

Block = Mapping[str, Any]


def _accuracy(block: Block | None) -> str:
    return fmt_count(block["accuracy"], block.get("n", 0)) if block else "-"


def format_table(metrics: Mapping[str, Any]) -> str:
    """A plain-text summary of :func:`stargan.evaluation.evaluate.evaluate`'s metrics: one row per attribute and
    an overall row, each number with its sample count."""
    sections = {k: metrics.get(k) for k in SECTIONS}
    header = ["attribute"]
    if sections["target_accuracy"]:
        header += ["target acc", "preserve acc", "real acc"]
    if sections["counterfactual"]:
        header += ["cf L1 (do-nothing) ratio", "cf L1 changed / kept", "cf PSNR (do-nothing)"]
    header += ["cycle L1"]
    if sections["fid"]:
        header += ["FID"]

    def row(label: str, pick: Callable[[Block | None], Block | None]) -> list[str]:
        cells = [label]
        if sections["target_accuracy"]:
            cells += [_accuracy(pick(sections[k])) for k in ACCURACIES]
        if sections["counterfactual"]:
            cf = pick(sections["counterfactual"]) or {}
            if cf.get("n"):
                ratio = f" x{cf['l1_ratio']:.2f}" if cf.get("l1_ratio") is not None else ""
                cells += [f"{fmt_number(cf['l1'])} ({fmt_number(cf['baseline_l1'])}){ratio} n={cf['n']}",
                          f"{fmt_number(cf.get('l1_changed'))} / {fmt_number(cf.get('l1_kept'))}",
                          f"{fmt_number(cf['psnr'], 2)} ({fmt_number(cf['baseline_psnr'], 2)}) n={cf['n']}"]
            else:
                cells += ["-", "-", "-"]
        cyc = pick(sections["cycle_reconstruction"]) or {}
        cells.append(f"{fmt_number(cyc.get('l1'))} (n={cyc.get('n', 0)})")
        if sections["fid"]:
            f = pick(sections["fid"]) or {}
            cells.append(f"{fmt_number(f.get('fid'), 2)} (n={f.get('n_fake', 0)})")
        return cells

    rows = [header]
    for a in metrics["attributes"]:
        rows.append(row(a, lambda s, a=a: None if s is None else (s.get("per_attribute") or {}).get(a)))
    rows.append(row("overall", lambda s: None if s is None else s.get("overall")))
    counts = metrics.get("counts", {})
    lines = [f"{metrics.get('dataset', '')}: {counts.get('test_images', 0)} test images x "
             f"{counts.get('targets_per_image', 0)} targets = {counts.get('translations', 0)} translations "
             f"({metrics.get('split', '')}, {metrics.get('image_size')}px)", text_table(rows)]
    fid = (sections["fid"] or {}).get("overall")
    if fid:
        kid = (f", KID {fmt_number(fid.get('kid'), 4)} +- {fmt_number(fid.get('kid_std'), 4)}"
               if fid.get("kid") is not None else "")
        lines.append(f"FID (all translations vs {fid['n_real']} real) {fmt_number(fid.get('fid'), 2)} "
                     f"(n={fid['n_fake']}){kid}")
    lines += [f"{key}: skipped ({reason})" for key, reason in (metrics.get("skipped") or {}).items() if reason]
    return "\n".join(lines)
