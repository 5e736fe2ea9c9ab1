"""The commands of `scm-bench`: each parses nothing and decides nothing, it calls the library
and turns its result into lines and an exit code. Imports stay inside each command, so that
`scm-bench --help` loads nothing heavy."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from scm_bench.exit_codes import summary_code


def cmd_validate(args) -> int:
    from scm_bench.spec import validate

    return validate(args.specs, args.set or [], args.allow_large, echo=print)


def cmd_init(args) -> int:
    from scm_bench.spec.starter import write_starter

    return write_starter(args.name, Path.cwd(), echo=print)


def cmd_expand(args) -> int:
    from scm_bench.spec import load_trials

    trials = load_trials(args.spec, args.set or [], args.allow_large).trials
    if args.json:
        print(json.dumps([t.record() for t in trials], indent=2))
    else:
        for t in trials:
            print(f"{t.trial_id}\t{t.variant}\tseed={t.seed}")
    return 0


def cmd_ls(args) -> int:
    from scm_bench.spec.docs import listing

    print("\n".join(listing({"techniques": "settings"}.get(args.what, args.what), args.spec)))
    return 0


def cmd_train(args) -> int:
    from scm_bench.lock import RunLock
    from scm_bench.names import require_dir
    from scm_bench.spec import load_trials
    from scm_bench.train.loop import train_trial

    spec = load_trials(args.config, args.set or [], args.allow_large).trials[0].spec  # the first
    out = require_dir(Path(args.out), "--out", "trial")
    with RunLock(out):
        result = train_trial(
            spec,
            out,
            on_log=lambda r: print(
                f"step {r['step']}: loss {r['loss']:.4g} grad_norm {r['grad_norm']:.3g}",
                flush=True,
            ),
        )
    print(json.dumps(result, indent=2, default=str))
    return summary_code([result["status"]])


def cmd_run(args) -> int:
    from scm_bench.names import require_dir
    from scm_bench.runner.cluster import set_verbosity
    from scm_bench.runner.run import run
    from scm_bench.runner.tracking import logger_callbacks
    from scm_bench.spec import load_trials

    set_verbosity(args.verbose)
    loaded = load_trials(args.spec, args.set or [], args.allow_large)
    spec = loaded.spec
    out = require_dir(Path(args.out) if args.out else Path("runs") / spec.name,
                      "--out" if args.out else "name", "run")  # fmt: skip
    cache = args.teacher_cache and require_dir(Path(args.teacher_cache), "--teacher-cache")
    print(f"{spec.name}: {len(loaded.trials)} trial(s) -> {out}")
    df = run(
        spec,
        loaded.trials,
        out,
        address=args.address,
        dashboard=args.dashboard,
        dashboard_host=args.dashboard_host,
        max_concurrent=args.max_concurrent,
        teacher_cache=cache,
        storage=args.storage,
        callbacks=logger_callbacks(args.wandb, args.mlflow, spec.name),
    )
    return summary_code(df["status"])


def cmd_sample(args) -> int:
    from scm_bench.report.pick import sample_to_file

    a = args
    print(sample_to_file(Path(a.source), Path(a.out), a.variant, a.seed, a.teacher, a.steps, a.n,
                         a.noise_seed, a.device))  # fmt: skip
    return 0


def cmd_tb(args) -> int:
    from scm_bench.runner.tracking import tensorboard_command

    cmd = tensorboard_command(Path(args.run_dir), args.port)
    print(shlex.join(cmd))
    return subprocess.call(cmd) if args.launch else 0


def cmd_report(args) -> int:
    from scm_bench.names import run_folder
    from scm_bench.report import write_report

    md, html = write_report(run_folder(args.run_dir, "results.csv"))
    print(f"wrote {md} and {html}")
    return 0


def cmd_plan(args) -> int:
    from scm_bench.names import run_folder

    if not Path(args.run_dir, "spec.yaml").is_file():  # a spec: its compute plan
        from scm_bench.spec import load_trials
        from scm_bench.train.compute_plan import plan_lines as compute_plan

        loaded = load_trials(args.run_dir, args.set or [], args.allow_large)
        workers = loaded.spec.resources.workers
        print("\n".join(compute_plan(loaded.trials, args.device, args.mfu, workers)))
        return 0
    from scm_bench.report import load_run
    from scm_bench.report.verdicts import plan_lines

    print("\n".join(plan_lines(load_run(run_folder(args.run_dir, "spec.yaml")))))
    return 0


def cmd_publish(args) -> int:
    from scm_bench.names import require_dir
    from scm_bench.report.publish import publish_all

    publish_all(args.run_dirs, require_dir(Path(args.to), "--to"), args.readme, echo=print)
    return 0


def cmd_register(args) -> int:
    """`scm-bench register SPEC`: write the registration of the spec as loaded (with --set)."""
    from scm_bench.errors import UserError
    from scm_bench.report import format as fmt
    from scm_bench.report.confirm import HISTORY
    from scm_bench.spec import load_trials
    from scm_bench.spec.registration import register, replayed

    loaded = load_trials(args.spec, list(args.set or []), args.allow_large)
    ids = [t.trial_id for t in loaded.trials]
    log = Path(loaded.where).resolve().parent
    log = next((d / HISTORY for d in (log, *log.parents) if (d / HISTORY).exists()), None)
    dumped = loaded.spec.model_dump(mode="json")
    settings = fmt.flatten(dumped.get("trial") or {})
    k = replayed(ids, log, settings=settings) if log is not None else 0
    if k:
        raise UserError(f"{args.spec}: {k} of its {len(ids)} trials repeat trials of a run "
                        f"published in {log} (same settings and seed: the same numbers); "
                        "a confirmatory design needs seeds never used before")  # fmt: skip
    path, fp = register(Path(loaded.where), dumped, ids)
    print(f"{loaded.spec.name}: design {fp[:12]} registered in {path}; commit it before "
          "`scm-bench run` so the run is confirmatory (docs/verdicts.md)")  # fmt: skip
    for line in _too_few_seeds(loaded.spec, log.parent if log is not None else None):
        print(f"warning: {args.spec}: {line}", file=sys.stderr)
    return 0


def _too_few_seeds(spec, reports_dir: Path | None) -> list[str]:
    """Primary divergence claims whose log-rank test cannot clear the scoreboard's first Holm
    step with the spec's seeds; the family is the published specs' primaries with this spec's
    own in place of its published ones."""
    from scm_bench.report.history import primary_claims, published_folders
    from scm_bench.report.survival import floor_warning
    from scm_bench.spec.claims import DIVERGED

    published = published_folders(reports_dir) if reports_dir is not None else []
    others = [f for f in published if f.name != spec.name]
    primaries = [c for c in spec.claims if c.primary]
    family = primary_claims(others) + len(primaries)
    lines = [floor_warning(c.name, len(spec.seeds), family) for c in primaries
             if c.metric == DIVERGED]  # fmt: skip
    return [x for x in lines if x]
