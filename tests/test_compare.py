"""`stargan compare`: pairwise CycleGANs vs one StarGAN, end to end on a tiny shapes config."""
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import make_image_folder

from common.checkpoint import _flatten, list_checkpoints, load_checkpoint
from common.config import from_dict
from common.networks.factory import count_parameters
from cyclegan.config import CycleGANConfig
from cyclegan.model import build_networks
from stargan.cli import cli
from stargan.compare.plan import _cyclegan_schedule
from stargan.model import networks_from_checkpoint

DOMAINS = ["Red", "Green", "Blue"]
TINY = {
    "model": "compare",
    "name": "tiny",
    "data": {"kind": "shapes", "domains": DOMAINS, "n": 60, "size": 32, "seed": 0, "test_fraction": 0.2},
    "budget": {"mode": "images", "images_per_model": 48},
    "cyclegan": {"data": {"batch_size": 8}, "network": {"netG": "resnet_6blocks", "ngf": 8, "ndf": 8},
                 "loss": {"pool_size": 10}, "run": {"num_workers": 0},
                 "log": {"progress": False, "every_steps": 1, "image_every_steps": 100}},
    "stargan": {"data": {"batch_size": 8},
                "network": {"g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 1, "d_repeat_num": 3},
                "optim": {"n_critic": 2}, "run": {"num_workers": 0},
                "log": {"progress": False, "every_steps": 1, "image_every_steps": 100}},
    "classifier": {"epochs": 1, "width": 8, "batch_size": 16},
    "eval": {"max_images_per_domain": 4, "grid_inputs": 2},
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny nets gain nothing from a second intra-op thread, and on a shared 2-core machine the spinning
    # OpenMP threads made these tests ~5x slower.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def invoke(args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def write_config(path, data=TINY):
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def snapshot(out):
    """Every checkpoint file and timing.json of the run folders, with their contents' identity."""
    files = {}
    for method in ("cyclegan", "stargan"):
        for run in sorted((out / method).iterdir()):
            for _, ckpt in list_checkpoints(run):
                files[str(ckpt)] = ckpt.stat().st_mtime_ns
            files[str(run / "timing.json")] = (run / "timing.json").read_text()
    return files


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    cfg = write_config(root / "tiny.yaml")
    out = root / "out"
    first = invoke(["compare", cfg, "--out", out, "--device", "cpu"])
    return cfg, out, first.output


def test_results_cover_every_model_and_direction(compared):
    _, out, output = compared
    results = json.loads((out / "results.json").read_text())
    assert results["k"] == 3 and results["pairs"] == ["Red2Green", "Red2Blue", "Green2Blue"]
    cg, sg = results["methods"]["cyclegan"], results["methods"]["stargan"]
    assert cg["models"] == 3 and sg["models"] == 1
    assert len(cg["runs"]) == 3 and len(sg["runs"]) == 1

    # Parameter counts are those of the networks actually stored in the run folders (G + D of every model).
    expected_cg = 0
    for run in cg["runs"]:
        ckpt = load_checkpoint(run["run_dir"])
        nets = build_networks(from_dict(CycleGANConfig, ckpt["config"]))
        for name, net in nets.items():
            net.load_state_dict(ckpt["nets"][name])
        expected_cg += sum(count_parameters(n) for n in nets.values())
    _, nets, _ = networks_from_checkpoint(load_checkpoint(sg["runs"][0]["run_dir"]), "stargan")
    assert set(nets) == {"G", "D"}
    assert cg["parameters"] == expected_cg
    assert sg["parameters"] == sum(count_parameters(n) for n in nets.values())

    for method in (cg, sg):
        for key in ("accuracy", "matrix"):
            assert method[key] is not None
        assert method["train_seconds"] > 0
        assert method["n"] == sum(n for row in method["matrix"]["n"].values() for n in row.values()) > 0
        directed = [(s, d) for s in DOMAINS for d in DOMAINS if s != d]
        for key in ("accuracy", "l1", "n"):
            matrix = method["matrix"][key]
            entries = [(s, d) for s, row in matrix.items() for d, v in row.items() if v is not None]
            assert sorted(entries) == sorted(directed)  # k(k-1) = 6 per method
        for run in method["runs"]:
            assert run["steps"] == run["planned_steps"]
        # Every direction is scored on the same test inputs, so both methods share the sample counts.
        assert method["matrix"]["n"] == cg["matrix"]["n"]
        assert method["counterfactual_l1"] is not None and method["n_counterfactual"] > 0
    assert results["baseline"]["counterfactual_l1"] is not None
    assert cg["fid"] is None and results["fid_skipped"]
    assert "StarGAN" in output and "report:" in output


def test_reports_reference_existing_grids(compared):
    _, out, _ = compared
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    md_images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)
    html_images = re.findall(r'<img src="([^"]+\.png)"', page)
    assert len(md_images) == len(DOMAINS) and sorted(md_images) == sorted(html_images)
    for rel in md_images:
        assert (out / rel).is_file()
    for text in ("CycleGAN (pairwise)", "StarGAN", "do-nothing"):
        assert text in md and text in page


def test_rerun_skips_training(compared):
    cfg, out, _ = compared
    before = snapshot(out)
    second = invoke(["compare", cfg, "--out", out, "--device", "cpu"])
    assert snapshot(out) == before
    assert second.output.count("already trained") == 4
    assert "evaluation: up to date" in second.output


def test_dry_run_writes_nothing(tmp_path):
    cfg = write_config(tmp_path / "tiny.yaml")
    result = invoke(["compare", cfg, "--out", tmp_path / "never", "--dry-run"])
    assert "3 pairwise CycleGANs + 1 StarGAN" in result.output
    assert "Red2Green" in result.output and "stargan: 6 iterations" in result.output
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("change, words", [
    ({"data": {**TINY["data"], "domains": ["Red", "Purple"]}}, ["Purple", "valid domains"]),
    ({"budget": {"mode": "steps"}}, ["budget.mode", "'images', 'time'"]),
    ({"budget": {"mode": "images"}}, ["budget.images_per_model"]),
    ({"cyclegan": {"optim": {"n_epochs": 3}}}, ["cyclegan.optim.n_epochs", "set by the comparison"]),
    ({"stargan": {"network": {"g_conv_dim": 8, "bogus": 1}}}, ["bogus"]),
])
def test_config_errors_exit_2_with_one_line(tmp_path, change, words):
    cfg = write_config(tmp_path / "bad.yaml", {**TINY, **change})
    result = invoke(["compare", cfg, "--out", tmp_path / "out", "--dry-run"], code=2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for word in words:
        assert word in lines[0]


def test_time_budget_probes_then_caps(tmp_path):
    data = {**TINY, "budget": {"mode": "time", "total_seconds": 2.0, "probe_steps": 1}}
    cfg = write_config(tmp_path / "time.yaml", data)
    out = tmp_path / "out"
    invoke(["compare", cfg, "--out", out, "--device", "cpu"])
    plan = json.loads((out / "plan.json").read_text())
    assert set(plan["probe"]) == {"cyclegan", "stargan"} and all(v > 0 for v in plan["probe"].values())
    results = json.loads((out / "results.json").read_text())
    for method in results["methods"].values():
        for run in method["runs"]:
            timing = json.loads((Path(run["run_dir"]) / "timing.json").read_text())
            assert timing["finished"]
            assert run["steps"] >= 1
    assert not (out / "probe").exists()


def test_cyclegan_schedule_rounds_to_whole_epochs():
    # 10 steps/epoch (40 images, batch 4): 23 steps -> 2 epochs = 20 steps = 2 x 40 pairs x 2 images.
    assert _cyclegan_schedule(23, 40, 25, 4) == (2, 20, 160, None)
    # Below one epoch the run stops inside it.
    assert _cyclegan_schedule(3, 40, 25, 4) == (1, 3, 24, 3)


def test_imagefolder_data_is_cropped_resized_and_split_per_domain(tmp_path):
    from PIL import Image

    from stargan.compare.config import load_compare_config
    from stargan.compare.data import prepare_data

    for seed, domain in enumerate(("happy", "sad", "angry")):
        make_image_folder(tmp_path / "rafd" / domain, 10, size=(40, 30), seed=seed)
    # Nested folders and a stem shared by two files must not collide in the flat domain view.
    make_image_folder(tmp_path / "rafd" / "sad" / "sub", 1, size=(30, 40), seed=7)
    Image.new("RGB", (40, 30)).save(tmp_path / "rafd" / "angry" / "img_000.jpg")
    data = {"kind": "imagefolder", "domains": ["happy", "sad", "angry"], "root": str(tmp_path / "rafd"),
            "image_size": 16, "test_fraction": 0.2}
    cfg = load_compare_config(write_config(tmp_path / "rafd.yaml", {**TINY, "data": data}))
    out = tmp_path / "out"
    manifest = prepare_data(cfg, out)
    for domain in data["domains"]:
        n = 10 if domain == "happy" else 11
        assert len(manifest["files"]["train"][domain]) == n - 2 and len(manifest["files"]["test"][domain]) == 2
        for name in manifest["files"]["test"][domain]:
            with Image.open(out / "domains" / "test" / domain / name) as img:
                assert img.size == (16, 16)
    assert "sub__img_000.png" in manifest["files"]["train"]["sad"] + manifest["files"]["test"]["sad"]
    angry = manifest["files"]["train"]["angry"] + manifest["files"]["test"]["angry"]
    assert {"img_000_jpg.png", "img_000_png.png"} <= set(angry) and len(set(angry)) == 11
    view = out / "pairs" / "happy2sad"
    assert sorted(p.name for p in (view / "testB").iterdir()) == manifest["files"]["test"]["sad"]
    assert len(list((view / "trainA").iterdir())) == 8 and len(list((view / "trainB").iterdir())) == 9
    # Prepared once: a second call reads the manifest; other data settings are refused.
    assert prepare_data(cfg, out) == manifest
    cfg.data.image_size = 32
    with pytest.raises(Exception, match="other data settings"):
        prepare_data(cfg, out)


def test_celeba_data_keeps_images_of_exactly_one_domain(tmp_path):
    from common.data.shapes import make_dataset
    from stargan.compare.config import load_compare_config
    from stargan.compare.data import prepare_data

    shapes = tmp_path / "celeba"
    make_dataset(shapes, n=40, size=16, seed=1)
    data = {"kind": "celeba", "domains": ["Red", "Blue"], "root": str(shapes / "images"),
            "attr_path": str(shapes / "list_attr_celeba.txt"),
            "partition_path": str(shapes / "list_eval_partition.txt"), "image_size": 16}
    cfg = load_compare_config(write_config(tmp_path / "celeba.yaml", {**TINY, "data": data}))
    manifest = prepare_data(cfg, tmp_path / "out")
    test = set((shapes / "test_files.txt").read_text().split())
    labels = {line.split()[0]: line.split()[1:] for line in
              (shapes / "list_attr_celeba.txt").read_text().splitlines()[2:]}
    for split in ("train", "test"):
        for domain, column in (("Red", 0), ("Blue", 2)):
            names = manifest["files"][split][domain]
            assert names and all(labels[n][column] == "1" and (n in test) == (split == "test") for n in names)


@pytest.mark.parametrize("name, k, steps", [("shapes", 4, 1000), ("rafd", 8, 54000)])
def test_shipped_configs_plan(tmp_path, name, k, steps):
    from stargan.compare.config import load_compare_config
    from stargan.compare.plan import build_plan

    path = Path(__file__).resolve().parent.parent / "configs" / "compare" / f"{name}.yaml"
    cfg = load_compare_config(path)
    plans = build_plan(cfg, str(path), tmp_path, None)
    assert len(cfg.data.domains) == k and len(plans) == k * (k - 1) // 2 + 1
    assert plans[-1].method == "stargan" and plans[-1].steps == steps


def test_readme_preserving_compare_commands_are_valid(tmp_path):
    # The README's rerun with the identity-preserving options, read as the shell reads it (variables expanded,
    # line continuations joined): each command must pass `compare --dry-run` (a misspelt key or a value out of
    # range exits 2), the StarGAN must get exactly `stargan demo`'s preserving recipe, as the README says, and
    # the CycleGANs exactly the mask with TV and the EMA.
    from stargan.cli.demo import RECIPES

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, re.S) if "compare-shapes-preserving" in b)
    shell = 'stargan() { printf "%s\\0" "$@"; printf "\\n"; }\n' + block
    printed = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True).stdout
    commands = [line.split("\0")[:-1] for line in printed.splitlines() if line]
    assert len(commands) == 2, commands
    expected_cyclegan = {"network.attention_mask": True, "loss.lambda_mask": 0.02, "loss.lambda_mask_tv": 0.01,
                         "ema.decay": 0.999}
    expected = {**{f"cyclegan.{k}": v for k, v in expected_cyclegan.items()},
                **_flatten(RECIPES["preserving"], "stargan")}
    budgets = []
    for args in commands:
        assert args[:2] == ["compare", "configs/compare/shapes.yaml"], args
        sets = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--set")
        options = {k: yaml.safe_load(v) for k, v in sets.items() if not k.startswith("budget.")}
        assert options == expected
        budgets.append({k: yaml.safe_load(v) for k, v in sets.items() if k.startswith("budget.")})
        out = args.index("--out")
        result = invoke(["compare", root / args[1], *args[2:out], *args[out + 2:], "--out", tmp_path / "never",
                         "--dry-run"])
        assert "6 pairwise CycleGANs + 1 StarGAN" in result.output
    assert budgets == [{}, {"budget.mode": "time", "budget.total_seconds": 1200}]
    assert "600s for the StarGAN" in result.output
    assert not (tmp_path / "never").exists()
