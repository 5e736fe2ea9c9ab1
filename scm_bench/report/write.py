"""Write a run's report (report.md, self-contained report.html, report/ folder) and the index.

<run dir>/report.md          Markdown; figures and sample grids linked by relative path
<run dir>/report.html        one file: inline CSS, every image a base64 data URI
<run dir>/report/table.csv   the main table, long: one row per (variant, column) with its stats
<run dir>/report/*.png       figures;  report/samples/*.png  sample grids
<run dir>/report/summary.json   name, claim and trial counts (read by ``write_index``)
<run dir>/report/.scm-bench-report   the files above: the only ones a rewrite removes
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup, escape

from scm_bench import rundir
from scm_bench.report import figures as fig
from scm_bench.report import format as fmt
from scm_bench.report import header, section
from scm_bench.report.best import BEST_COLUMNS, best_section, markdown_rows
from scm_bench.report.folder import files_in, fresh_report_dir, list_written
from scm_bench.report.load import Run, load_histories, load_run, report_writer
from scm_bench.report.meta import collect_meta
from scm_bench.report.samples import collect_grids
from scm_bench.report.table import (
    REFERENCE_ROWS,
    MetricInfo,
    long_table,
    main_table,
    metric_columns,
    reference_value,
)

TEMPLATES = Path(__file__).parent / "templates"


def _env(html: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["code"] = lambda s: Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(s))))
    env.filters["data_uri"] = data_uri
    return env


def render(template: str, context: dict, **more) -> str:
    """Render a template; autoescaped HTML for *.html.j2, plain text otherwise."""
    return _env(template.endswith(".html.j2")).get_template(template).render(context, **more)


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _bar_data(run: Run, table: pd.DataFrame, infos: list[MetricInfo]):
    """(bars: variant, sampler, value, ci_low, ci_high; points: variant, sampler, seed, value)."""
    bars, points = [], []
    for info in infos:
        for _, r in table.iterrows():
            stats = {s: r[f"{info.column}.{s}"] for s in ("value", "ci_low", "ci_high")}
            bars.append({"variant": r["variant"], "sampler": info.sampler, **stats})
            res = run.results
            rows = res[(res["variant"] == r["variant"]) & res["status"].isin(info.counted)]
            for seed, value in zip(rows["seed"], pd.to_numeric(rows[info.column]), strict=True):
                points.append({"variant": r["variant"], "sampler": info.sampler, "seed": seed,
                               "value": value})  # fmt: skip
    bar_columns = ["variant", "sampler", "value", "ci_low", "ci_high"]
    return (pd.DataFrame(bars, columns=bar_columns),
            pd.DataFrame(points, columns=["variant", "sampler", "seed", "value"]))  # fmt: skip


def asked_for(run: Run, setting: str) -> bool:
    """Whether some trial asked for ``eval.<setting>`` (non-zero; True when unknown)."""
    specs = [t.get("spec", {}).get("eval", {}) for t in run.trials]
    return not specs or any(s.get(setting, 1) != 0 for s in specs)


def make_figures(run: Run, table: pd.DataFrame, infos: list[MetricInfo], out: Path):
    """[(title, path)] of every figure that has data, and notes on the ones that have none."""
    made, notes = [], []
    curves, tbins = load_histories(run)
    res = run.results
    diverged = res[(res["status"] == rundir.DIVERGED) & res["diverged_step"].notna()]
    path = fig.curves_figure(curves, run.variants, diverged, out / "curves.png")
    made.append(("Training curves (mean ± sd over seeds; dotted: divergence)", path))
    path = fig.eval_curve_figure(curves, run.variants, out / "eval_curves.png")
    if path is not None or asked_for(run, "curve_every"):  # no note when none was asked for
        made.append(("Sample metrics against step (eval.curve_every; mean ± sd over seeds)", path))
    path = fig.probe_figure(res, run.variants, out / "probes.png")
    made.append(("Mechanism probes at fixed weights by t-bin (mean ± sd over seeds)", path))
    path = fig.tbin_figure(tbins, run.variants, out / "g_norm_tbin.png")
    made.append(("||g|| by t-bin (mean ± sd over seeds)", path))
    xlabel = ", ".join(run.axes) or "variant"
    sample = [i for i in infos if i.kind == "sample" and i.sampler]
    for base in dict.fromkeys(i.base for i in sample):
        # A student's bars leave out its teacher's values; a teacher run has no others.
        own = [i for i in sample if i.base == base]
        group = [i for i in own if i.sampler != "teacher"] or own
        title = f"{base} {group[0].arrow if group else ''} per sampler (95% interval; dots: seeds)"
        bars, points = _bar_data(run, table, group)
        floor = reference_value(run, base, REFERENCE_ROWS[0])
        path = fig.bars_figure(bars, run.variants, title, base, xlabel, out / f"bars_{base}.png",
                               points=points, floor=floor)  # fmt: skip
        made.append((title, path))
    if "method" in res and (res["method"] == "scd").any():
        scd = [v for v in run.variants if (res.loc[res["variant"] == v, "method"] == "scd").any()]
        for base in dict.fromkeys(i.base for i in sample if i.sampler == "teacher"):
            group = [i for i in sample if i.base == base]
            title = f"sCD: student vs teacher {base} (95% interval; dots: seeds)"
            bars, points = _bar_data(run, table, group)
            path = fig.bars_figure(bars, scd, title, base, xlabel,
                                   out / f"scd_teacher_{base}.png", points=points)  # fmt: skip
            made.append((title, path))
    for title, path in made:
        if path is None:
            notes.append(f"No data for the figure '{title}'.")
    return [(t, p) for t, p in made if p is not None], notes


@report_writer  # its own files checked first; the run only read (nothing renamed)
def write_report(
    run_dir: Path, meta: dict | None = None, alpha_power: float | None = None
) -> tuple[Path, Path]:
    """Write report.md, report.html and report/ for a (possibly partial) run; return the two.
    ``alpha_power``: the level of detectable effects and seeds needed (default: the report's
    own Holm threshold; ``publish`` re-renders the verdicts at the scoreboard's)."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    meta = collect_meta() if meta is None else meta
    out = fresh_report_dir(run_dir / "report")  # only the last report's own files removed
    kept = files_in(out)  # a user's files beside them: never listed, never removed

    # Verdicts, tables, figures, sample grids.
    verdict_ctx = section.verdict_context(run, alpha_power)
    judged, claim_notes = verdict_ctx["judged"], verdict_ctx["notes"]
    infos = metric_columns(run)
    table = main_table(run, infos)
    long_table(run, table, infos).to_csv(out / "table.csv", index=False)
    figures, fig_notes = make_figures(run, table, infos, out)
    grids, grid_notes = collect_grids(run, out / "samples")
    if not asked_for(run, "grid"):  # eval.grid: 0, no grids asked for: none is missing
        grid_notes = [n for n in grid_notes if "no trial finished ok" in n]
    missing = run.missing + claim_notes + fig_notes + grid_notes
    if not infos:
        missing.append("No metric columns in the results table yet.")
    summary = {
        "name": run.name,
        "description": str(run.spec.get("description") or ""),
        "baseline": run.baseline,
        "variants": len(run.variants),
        "counts": header.counts(run.results),
        "verdicts": section.summary_verdicts(verdict_ctx),
        "claims": section.summary_claims(verdict_ctx),  # the scoreboard's rows (report.index)
        "commit": meta.get("commit"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    ours = [out / "table.csv", out / "summary.json", *(p for _, p in figures)]
    ours += [i["path"] for g in grids for i in g["images"]]
    list_written(out, files_in(out) - kept | {p.relative_to(out).as_posix() for p in ours})

    # Render both flavours from one context.
    rel = lambda p: p.relative_to(run_dir).as_posix()
    ctx = {k: v for k, v in verdict_ctx.items() if k not in ("judged", "notes")} | {
        "name": run.name,
        "facts": header.facts(run, meta),
        "noise": fmt.noise_rows(table, infos),
        "noise_columns": fmt.NOISE_COLUMNS,
        "missing": missing,
        "figures": [{"title": t, "path": rel(p), "file": p} for t, p in figures],
        "grids": [
            g | {"images": [i | {"rel": rel(i["path"])} for i in g["images"]]} for g in grids
        ],
        "failures": fmt.failures(run.results),
        "table_csv": rel(out / "table.csv"),
        "best": best_section(run_dir),  # a search: its best proposal and the importances
        "best_columns": BEST_COLUMNS,
    }
    refs = {(row, i.base): reference_value(run, i.base, row) for row in REFERENCE_ROWS
            for i in infos if i.kind == "sample"}  # fmt: skip
    tested = {(j.variant, j.claim.metric) for j in judged if j.verdict and j.claim.primary}
    tables = {html: fmt.display_tables(table, infos, html, refs, tested) for html in (False, True)}
    md_tables = [t | {"text": fmt.markdown_table(t["columns"], t["rows"])} for t in tables[False]]
    md = render(
        "report.md.j2",
        ctx,
        tables=md_tables,
        noise_table=fmt.markdown_table(fmt.NOISE_COLUMNS, ctx["noise"]),
        failure_table=fmt.markdown_failures(ctx["failures"]),
        grid_table=fmt.markdown_grids(ctx["grids"]),
        best_table=fmt.markdown_table(BEST_COLUMNS, markdown_rows(ctx["best"]))
        if ctx["best"]
        else "",
        legend=fmt.LEGEND,
    )
    html = render("report.html.j2", ctx, tables=tables[True], legend=fmt.LEGEND)
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    md_path.write_text(md)
    html_path.write_text(html)
    return md_path, html_path
