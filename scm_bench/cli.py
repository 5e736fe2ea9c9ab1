"""Command line: parses arguments and calls the library. User errors exit 2 with one line each."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

EXIT_USER_ERROR = 2


def _sets(args) -> list[str]:
    return list(args.set or [])


def cmd_validate(args) -> int:
    from scm_bench.spec import load_trials

    for path in args.specs:
        print(f"{path}: ok ({len(load_trials(path, _sets(args)).trials)} trials)")
    return 0


def cmd_expand(args) -> int:
    from scm_bench.spec import load_trials

    trials = load_trials(args.spec, _sets(args)).trials
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "trial_id": t.trial_id,
                        "variant": t.variant,
                        "seed": t.seed,
                        "spec": t.spec.model_dump(mode="json"),
                    }
                    for t in trials
                ],
                indent=2,
            )
        )
    else:
        for t in trials:
            print(f"{t.trial_id}\t{t.variant}\tseed={t.seed}")
    return 0


def cmd_ls(args) -> int:
    from scm_bench import metrics
    from scm_bench.data import LOADERS
    from scm_bench.spec.schema import field_docs

    what = args.what
    if what in ("all", "techniques"):
        print("# settings (dotted path, default, description)")
        for path, default, desc in field_docs():
            print(f"{path:28s} {default:24s} {desc}")
    if what in ("all", "datasets"):
        print("# datasets\n" + "\n".join(sorted(LOADERS)))
    if what in ("all", "metrics"):
        print("# metrics (name, better, aggregate, kind, description)")
        for m in sorted(metrics.list_metrics(), key=lambda m: (m["kind"], m["name"])):
            better = {True: "higher", False: "lower", None: "-"}[m["higher_is_better"]]
            print(
                f"{m['name']:20s} {better:7s} {m['aggregate']:6s} {m['kind']:9s} {m['description']}"
            )
    if what in ("all", "ablations"):
        print("# bundled ablations")
        root = Path(__file__).resolve().parent.parent / "ablations"
        for p in sorted(root.glob("*.yaml")):
            print(p.relative_to(root.parent))
    return 0


def cmd_train(args) -> int:
    from scm_bench.spec import load_trials
    from scm_bench.train.loop import train_trial

    spec = load_trials(args.config, _sets(args)).trials[0].spec  # a spec's first trial
    result = train_trial(
        spec,
        Path(args.out),
        on_log=lambda r: print(
            f"step {r['step']}: loss {r['loss']:.4g} grad_norm {r['grad_norm']:.3g}", flush=True
        ),
    )
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_run(args) -> int:
    from scm_bench.runner.run import run
    from scm_bench.spec import load_trials

    loaded = load_trials(args.spec, _sets(args))
    spec = loaded.spec
    out = Path(args.out) if args.out else Path("runs") / spec.name
    print(f"{spec.name}: {len(loaded.trials)} trial(s) -> {out}")
    df = run(
        spec,
        loaded.trials,
        out,
        address=args.address,
        dashboard=args.dashboard,
        dashboard_host=args.dashboard_host,
        max_concurrent=args.max_concurrent,
        teacher_cache=args.teacher_cache,
    )
    return 0 if (df["status"] != "failed").all() else 1


def cmd_report(args) -> int:
    from scm_bench.errors import RunError
    from scm_bench.report import write_report

    run_dir = Path(args.run_dir)
    if not (run_dir / "results.csv").exists():
        raise RunError(f"{run_dir}: no results.csv; is this a run directory?")
    md, html = write_report(run_dir)
    print(f"wrote {md} and {html}")
    return 0


def cmd_plan(args) -> int:
    from scm_bench.errors import RunError
    from scm_bench.report import load_run
    from scm_bench.report.verdicts import plan_lines

    run_dir = Path(args.run_dir)
    if not (run_dir / "spec.yaml").exists():
        raise RunError(f"{run_dir}: no spec.yaml; is this a run directory?")
    print("\n".join(plan_lines(load_run(run_dir))))
    return 0


def cmd_publish(args) -> int:
    from scm_bench.report.publish import publish

    for run_dir in args.run_dirs:
        print(f"published {publish(Path(run_dir), Path(args.to))}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scm-bench", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    setp = dict(
        action="append",
        metavar="PATH=VALUE",
        help="override a setting, e.g. train.steps=100 (repeatable)",
    )

    s = sub.add_parser("validate", help="check specs without running anything")
    s.add_argument("specs", nargs="+")
    s.add_argument("--set", **setp)
    s.set_defaults(fn=cmd_validate)

    s = sub.add_parser("expand", help="print the resolved trials of a spec")
    s.add_argument("spec")
    s.add_argument("--json", action="store_true", help="full resolved trial specs as JSON")
    s.add_argument("--set", **setp)
    s.set_defaults(fn=cmd_expand)

    s = sub.add_parser("ls", help="list settings, datasets, metrics, bundled ablations")
    s.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["all", "techniques", "datasets", "metrics", "ablations"],
    )
    s.set_defaults(fn=cmd_ls)

    s = sub.add_parser("run", help="run every variant x seed of a spec on Ray Tune")
    s.add_argument("spec")
    s.add_argument("--out", help="run directory (default runs/<spec name>)")
    s.add_argument("--set", **setp)
    s.add_argument("--address", help="existing Ray cluster (default: RAY_ADDRESS or local)")
    s.add_argument("--dashboard", action="store_true", help="start Ray's dashboard")
    s.add_argument("--dashboard-host", default="127.0.0.1", help="dashboard bind address")
    s.add_argument("--max-concurrent", type=int, help="trials at once (default: CPUs / cpu)")
    s.add_argument("--teacher-cache", help="teacher cache (default <out>/../_teachers)")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("train", help="train one trial without Ray")
    s.add_argument("config", help="a trial spec YAML (or an ablation spec: its first trial)")
    s.add_argument("--out", required=True, help="trial directory")
    s.add_argument("--set", **setp)
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("report", help="(re)write report.md and report.html of a run")
    s.add_argument("run_dir")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("plan", help="per claim of a run: noise, detectable effect, seeds needed")
    s.add_argument("run_dir")
    s.set_defaults(fn=cmd_plan)

    s = sub.add_parser("publish", help="copy run reports into a reports folder with an index")
    s.add_argument("run_dirs", nargs="+")
    s.add_argument("--to", default="reports", help="reports folder (default: reports)")
    s.set_defaults(fn=cmd_publish)
    return p


def main(argv: list[str] | None = None) -> int:
    from scm_bench.errors import UserError

    args = parser().parse_args(argv)
    # torch.func.jvp loads TorchScript decompositions on first use and warns about its own
    # internals; nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    try:
        return args.fn(args)
    except UserError as err:
        for line in err.lines:
            print(f"error: {line}", file=sys.stderr)
    return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
