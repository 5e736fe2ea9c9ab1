"""scm-bench: declarative ablation benchmarks for continuous-time consistency models (sCM).

Exit codes: 0 every trial ok; 1 some trial failed or diverged; 2 a user error (bad spec, flag
or file), one line per problem and no traceback; 130 interrupted; 141 a closed pipe.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import scm_bench
from scm_bench.exit_codes import INTERRUPTED, USER_ERROR, summary_code

EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE: the reader went away (`| head`), as Unix tools do


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _sets(args) -> list[str]:
    return list(args.set or [])


def cmd_validate(args) -> int:
    from scm_bench.spec import load_trials
    from scm_bench.spec.check import preflight

    for path in args.specs:
        loaded = load_trials(path, _sets(args), args.allow_large)
        preflight(loaded.trials, str(path))
        search = loaded.spec.search
        size = f"{len(loaded.trials)} trials"
        print(f"{path}: ok ({f'search: {search.num_samples} proposals' if search else size})")
    return 0


def cmd_expand(args) -> int:
    from scm_bench.spec import load_trials

    trials = load_trials(args.spec, _sets(args), args.allow_large).trials
    if args.json:
        print(json.dumps([t.record() for t in trials], indent=2))
    else:
        for t in trials:
            print(f"{t.trial_id}\t{t.variant}\tseed={t.seed}")
    return 0


def cmd_ls(args) -> int:
    from scm_bench.spec.docs import listing

    print("\n".join(listing({"techniques": "settings"}.get(args.what, args.what))))
    return 0


def cmd_train(args) -> int:
    from scm_bench.lock import RunLock
    from scm_bench.names import require_dir
    from scm_bench.spec import load_trials
    from scm_bench.train.loop import train_trial

    spec = load_trials(args.config, _sets(args), args.allow_large).trials[0].spec  # the first
    out = require_dir(Path(args.out), "--out")
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
    loaded = load_trials(args.spec, _sets(args), args.allow_large)
    spec = loaded.spec
    out = require_dir(Path(args.out) if args.out else Path("runs") / spec.name,
                      "--out" if args.out else "name")  # fmt: skip
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
    from scm_bench.train.model import sample_to_file

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

        loaded = load_trials(args.run_dir, _sets(args), args.allow_large)
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


STORAGE_HELP = "trial artifacts' storage: a folder all nodes see or s3://... (default OUT/ray)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scm-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"scm-bench {scm_bench.__version__}")
    verbose = dict(action="store_true", help="show Ray's and Optuna's logs")
    p.add_argument("-v", "--verbose", **verbose)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    large = dict(
        action="store_true",
        help="allow more than the default limits of axis values, seeds and trials",
    )
    setp = dict(action="append", metavar="PATH=VALUE",
                help="override a setting, e.g. train.steps=100 (repeatable)")  # fmt: skip

    spec_help = "a spec file, or the name of a bundled ablation (scm-bench ls ablations)"
    s = sub.add_parser("validate", help="check specs without running anything")
    s.add_argument("specs", nargs="+", metavar="SPEC", help=spec_help)
    s.add_argument("--set", **setp)
    s.add_argument("--allow-large", **large)
    s.set_defaults(fn=cmd_validate)

    s = sub.add_parser("expand", help="print the resolved trials of a spec")
    s.add_argument("spec", metavar="SPEC", help=spec_help)
    s.add_argument("--json", action="store_true", help="full resolved trial specs as JSON")
    s.add_argument("--set", **setp)
    s.add_argument("--allow-large", **large)
    s.set_defaults(fn=cmd_expand)

    s = sub.add_parser("ls", help="list settings, datasets, metrics, bundled ablations")
    s.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["all", "settings", "techniques", "datasets", "metrics", "ablations"],
        help="what to list (techniques = settings; default: all)",
    )
    s.set_defaults(fn=cmd_ls)

    s = sub.add_parser("run", help="run every variant x seed of a spec on Ray Tune")
    s.add_argument("spec", metavar="SPEC", help=spec_help)
    s.add_argument("--out", help="run directory (default runs/<spec name>)")
    s.add_argument("--set", **setp)
    s.add_argument("--address", help="existing Ray cluster (default: RAY_ADDRESS or local)")
    s.add_argument("--dashboard", action="store_true", help="start Ray's dashboard")
    s.add_argument("--dashboard-host", default="127.0.0.1", help="dashboard bind address")
    s.add_argument(
        "--max-concurrent", type=positive_int, help="trials at once (default: CPUs / cpu)"
    )
    s.add_argument("--teacher-cache", help="teacher cache (default ~/.cache/scm-bench/teachers)")
    s.add_argument("--storage", metavar="URI", help=STORAGE_HELP)
    s.add_argument("--allow-large", **large)
    s.add_argument("--wandb", metavar="PROJECT", help="also log trials to this W&B project")
    s.add_argument("--mlflow", metavar="URI", help="also log trials to this MLflow tracking URI")
    s.add_argument("-v", "--verbose", **verbose, default=argparse.SUPPRESS)
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("train", help="train one trial without Ray")
    s.add_argument(
        "config", help="a trial spec YAML (or an ablation spec or bundled name: its first trial)"
    )
    s.add_argument("--out", required=True, help="trial directory")
    s.add_argument("--set", **setp)
    s.add_argument("--allow-large", **large)
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("report", help="(re)write report.md and report.html of a run")
    s.add_argument("run_dir")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser(
        "plan",
        help="a run: per claim noise, detectable effect, seeds needed; a spec: its compute plan "
        "(FLOPs per step, GPU-hours, memory per worker; docs/paper-scale.md)",
    )
    s.add_argument("run_dir", metavar="RUN_DIR|SPEC")
    s.add_argument("--device", default="h100", choices=["h100", "h200", "a100"],
                   help="SPEC: the GPU whose peak FLOP/s the plan uses (default h100)")  # fmt: skip
    s.add_argument("--mfu", type=float, default=0.4,
                   help="SPEC: model-FLOPs utilization in (0, 1] (default 0.4)")  # fmt: skip
    s.add_argument("--set", **setp)
    s.add_argument("--allow-large", **large)
    s.set_defaults(fn=cmd_plan)

    s = sub.add_parser("publish", help="copy run reports into a reports folder with an index")
    s.add_argument("run_dirs", nargs="*", help="runs to publish (none: rebuild the index only)")
    s.add_argument("--to", default="reports", help="reports folder (default: reports)")
    s.add_argument("--readme", help="also write the scoreboard between the markers of this file")
    s.set_defaults(fn=cmd_publish)

    s = sub.add_parser("sample", help="draw samples from a trained model of a run")
    s.add_argument("source", metavar="RUN_DIR", help="a run directory, a trial folder or model.pt")
    s.add_argument("--variant", help="the trial's variant (tangent.mode=normalize, normalize)")
    s.add_argument("--seed", type=int, help="the trial's seed")
    s.add_argument("--teacher", action="store_true", help="sample that trial's teacher instead")
    s.add_argument("--steps", type=positive_int, help="student: 1|2|N (default 1); teacher: ODE")
    s.add_argument("--n", type=positive_int, help="samples (default: as many as the trial's grids)")
    s.add_argument("--noise-seed", type=int, help="default: the trial's seed (as its grids)")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    s.add_argument("--out", default="samples.png", help="a .png grid or .npz arrays")
    s.set_defaults(fn=cmd_sample)

    s = sub.add_parser("tb", help="print (or --launch) the TensorBoard command for a run")
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("--launch", action="store_true", help="start TensorBoard")
    s.add_argument("--port", type=int, help="TensorBoard's port (default 6006)")
    s.set_defaults(fn=cmd_tb)
    return p


def main(argv: list[str] | None = None) -> int:
    from scm_bench.errors import UserError

    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # a bare `scm-bench`: the help, not an error
        parser().print_help()
        return 0
    args = parser().parse_args(argv)
    log = logging.getLogger("scm_bench")  # damaged files, stale locks: one "warning:" line each
    if not log.handlers:
        log.addHandler(logging.StreamHandler(sys.stderr))
        log.handlers[0].setFormatter(logging.Formatter("warning: %(message)s"))
    # torch.func.jvp loads TorchScript decompositions on first use and warns about its own
    # internals; nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    try:
        return args.fn(args)
    except UserError as err:
        for line in err.lines:
            print(f"error: {line}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        msg = "interrupted: finished trials are kept; re-run the same command to resume"
        print(msg, file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # `scm-bench expand --json | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return EXIT_CLOSED_PIPE


if __name__ == "__main__":
    sys.exit(main())
