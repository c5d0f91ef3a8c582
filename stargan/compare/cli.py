"""The ``stargan compare`` command: options, the dry run, and the summary at the end. Progress lines come from
the stages' loggers, which :func:`stargan.cli.common.user_errors` shows on the terminal."""
from __future__ import annotations

from pathlib import Path

import click

from stargan.cli.common import DEVICE_HELP, user_errors
from stargan.compare.layout import REPORT_HTML, REPORT_MD, RESULTS_FILE


@click.command("compare")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set budget.images_per_model=20000 (repeatable).")
@click.option("--out", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the whole comparison [default: the config's out, else runs/compare-NAME]. "
                   "Running again with the same folder continues it and skips finished parts.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--dry-run", is_flag=True, help="Print the plan (k, pairs, budget per model); write and train nothing.")
@user_errors
def compare(config: Path, overrides: tuple[str, ...], out: Path | None, device: str, dry_run: bool) -> None:
    """Train k(k-1)/2 pairwise CycleGANs and one StarGAN on the same k domains and budget, evaluate every
    directed translation with one domain classifier, and write results.json, report.md and report.html."""
    # Imported here so that `stargan --help` does not load torch.
    from common.device import resolve_device
    from stargan.compare.report import format_summary
    from stargan.compare.run import dry_run_plan, load_config_and_out, run_compare

    cfg, out_dir = load_config_and_out(config, overrides, out)
    if dry_run:
        click.echo(dry_run_plan(cfg, str(config), out_dir))
        click.echo("# dry run: nothing written or trained")
        return
    resolve_device(device)
    results = run_compare(config, overrides, out=out_dir, device=device)
    click.echo(format_summary(results))
    click.echo(f"results: {out_dir / RESULTS_FILE}")
    click.echo(f"report: {out_dir / REPORT_MD} and {out_dir / REPORT_HTML}")
