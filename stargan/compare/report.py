"""The report stage: the summary table, ``report.md``/``report.html`` and the sample grids ``grids/<source>.png``."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from common.files import write_text_atomic
from common.grids import column_grid, save_grid
from common.tables import fmt_bytes, fmt_count, fmt_number, fmt_seconds, html_table, markdown_table, text_table
from stargan.compare.evaluate import Evaluation
from stargan.compare.layout import GRIDS_DIR, REPORT_HTML, REPORT_MD
from stargan.compare.plan import METHODS

STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}"
         "img{image-rendering:pixelated;width:min(100%,48em)}")


def summary_rows(results: dict) -> list[list[str]]:
    has_cf = results["baseline"]["n_counterfactual"] > 0
    header = ["method", "models", "parameters", "train time", "peak memory", "accuracy"]
    header += ["cf L1"] if has_cf else []
    header += ["FID"]
    rows = [header]
    for method in METHODS:
        r = results["methods"][method.key]
        row = [method.title, str(r["models"]), f"{r['parameters']:,}", fmt_seconds(r["train_seconds"]),
               fmt_bytes(r["peak_memory_bytes"]), fmt_count(r["accuracy"], r["n"])]
        if has_cf:
            row.append(fmt_count(r["counterfactual_l1"], r["n_counterfactual"]))
        row.append(fmt_number(r["fid"], 2))
        rows.append(row)
    if has_cf:
        b = results["baseline"]
        rows.append(["do-nothing", "-", "-", "-", "-", "-", fmt_count(b["counterfactual_l1"], b["n_counterfactual"]),
                     "-"])
    return rows


def format_summary(results: dict) -> str:
    """The summary table as text, with the classifier's own accuracy and whether FID ran."""
    lines = [text_table(summary_rows(results))]
    clf = results["classifier"]
    lines.append(f"classifier accuracy on real test images: {fmt_number(clf['real_test_accuracy'])} (n={clf['n']})")
    if results.get("fid_skipped"):
        lines.append("FID: skipped (no Inception weights; set eval.fid_weights)")
    return "\n".join(lines)


def _matrix_rows(domains: list[str], matrix: dict, digits: int = 3) -> list[list[str]]:
    rows = [["source \\ target", *domains]]
    for src in domains:
        rows.append([src] + ["" if src == dst else fmt_number(matrix.get(src, {}).get(dst), digits)
                             for dst in domains])
    return rows


def _introduction(results: dict) -> str:
    domains = results["domains"]
    b = results["budget"]
    k, p = len(domains), len(results["pairs"])
    budget = (f"{b['images_per_model']} training images per model" if b["mode"] == "images" else
              f"{b['total_seconds']:g}s of training wall clock, half for the StarGAN, half shared by the "
              f"{p} CycleGANs")
    return (f"k = {k} domains ({', '.join(domains)}): {p} pairwise CycleGANs (k(k-1)/2) against one "
            f"StarGAN, {results['data']['kind']} data at {results['data']['image_size']}px. Budget: "
            f"{budget}. Every directed translation ({k * (k - 1)} per method) is scored on the same test "
            f"images ({', '.join(f'{d} {n}' for d, n in results['test_images'].items())}) by one domain "
            f"classifier (accuracy on the real test images: "
            f"{fmt_number(results['classifier']['real_test_accuracy'])}).")


def _report_sections(results: dict) -> list[tuple[str, str, Any]]:
    """``(kind, title, payload)`` in report order; kinds: text, table, image."""
    domains = results["domains"]
    has_cf = bool(results["baseline"]["n_counterfactual"])
    out: list[tuple[str, str, Any]] = [
        ("text", "", _introduction(results)),
        ("table", "Summary", summary_rows(results)),
        ("text", "", "accuracy: the classifier recognises the target domain in the translation. cf L1: mean "
                     "absolute error (images in [-1, 1]) against the ground-truth counterfactual; do-nothing is "
                     "the input itself. Train time: wall clock summed over the method's models; peak memory: "
                     f"the largest of its models ({results['peak_memory_kind']})."),
    ]
    for method in METHODS:
        m = results["methods"][method.key]["matrix"]
        out.append(("table", f"{method.title}: accuracy per direction", _matrix_rows(domains, m["accuracy"])))
        if has_cf:
            out.append(("table", f"{method.title}: counterfactual L1 per direction", _matrix_rows(domains, m["l1"])))
    if has_cf:
        out.append(("table", "do-nothing: counterfactual L1 per direction",
                    _matrix_rows(domains, results["baseline"]["matrix"]["l1"])))
    truth = " then ground truth" if has_cf else ""
    out.append(("text", "Samples", f"One grid per source domain. For each test input, rows: CycleGAN (the pair "
                                   f"model of each target), StarGAN{truth}; columns: target domains "
                                   f"({', '.join(domains)}); the source's own column shows the input."))
    for src, rel in results["report"]["grids"].items():
        out.append(("image", src, rel))
    return out


def write_reports(results: dict, out: Path) -> tuple[Path, Path]:
    """``report.md`` and ``report.html`` (same sections; images referenced relatively)."""
    title = f"stargan compare: {results['name']}"
    md = [f"# {title}", ""]
    body = []
    for kind, head, payload in _report_sections(results):
        if kind == "text":
            md += ([f"## {head}", ""] if head else []) + [payload, ""]
            body.append((f"<h2>{html.escape(head)}</h2>" if head else "") + f"<p>{html.escape(payload)}</p>")
        elif kind == "table":
            md += [f"## {head}", "", markdown_table(payload), ""]
            body.append(f"<h2>{html.escape(head)}</h2>{html_table(payload)}")
        else:
            md += [f"### {head}", "", f"![{head}]({payload})", ""]
            body.append(f"<h3>{html.escape(head)}</h3><img src=\"{html.escape(payload)}\" alt=\"{html.escape(head)}\">")
    md_path, html_path = out / REPORT_MD, out / REPORT_HTML
    write_text_atomic(md_path, "\n".join(md))
    write_text_atomic(html_path, f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
                                 f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
                                 f"{''.join(body)}</body></html>\n")
    return md_path, html_path


def _sample_rows(evaluation: Evaluation, domains: list[str], src: str, i: int) -> list[list[Tensor]]:
    """Input ``i`` of ``src``: one row per method and, where the data has ground truth, a ground-truth row
    (black where a direction has none); the source's own column shows the input."""
    x = evaluation.test.inputs[src][i]
    rows = [[x if dst == src else evaluation.outputs[method.key][(src, dst)][i] for dst in domains]
            for method in METHODS]
    truths = evaluation.test.truths
    if any((src, dst) in truths for dst in domains):
        row = []
        for dst in domains:
            if dst == src:
                row.append(x)
            elif (src, dst) in truths and i in truths[(src, dst)][0]:
                truth_rows, truth_images = truths[(src, dst)]
                row.append(truth_images[truth_rows.index(i)])
            else:
                row.append(torch.zeros_like(x))
        rows.append(row)
    return rows


def write_grids(out: Path, domains: list[str], evaluation: Evaluation, inputs_per_grid: int) -> dict[str, str]:
    """``grids/<source>.png`` per source domain (its first ``inputs_per_grid`` test inputs, a white line between
    them); returns source -> path relative to ``out``."""
    if not inputs_per_grid:
        return {}
    folder = out / GRIDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for src in domains:
        n = len(evaluation.test.inputs[src][:inputs_per_grid])
        if not n:
            continue
        blocks = []
        for i in range(n):
            rows = _sample_rows(evaluation, domains, src, i)
            columns = [torch.stack([row[c] for row in rows]) for c in range(len(domains))]
            block = column_grid(columns)
            blocks += [block, torch.ones(3, 2, block.shape[2])]
        rel = f"{GRIDS_DIR}/{src}.png"
        save_grid(torch.cat(blocks[:-1], dim=1), out / rel)
        written[src] = rel
    return written
