"""The verdict commands' arguments (docs/verdicts.md): `scm-bench register SPEC` and
`scm-bench run --pilot`. Apart from cli.py only to keep that file short; imports stay lazy so
`scm-bench --help` loads nothing heavy."""

from __future__ import annotations

from pathlib import Path


def cmd_register(args) -> int:
    """`scm-bench register SPEC`: write the registration of the spec as loaded (with --set)."""
    from scm_bench.spec import load_trials
    from scm_bench.spec.registration import register

    loaded = load_trials(args.spec, list(args.set or []), args.allow_large)
    ids = [t.trial_id for t in loaded.trials]
    path, fp = register(Path(loaded.where), loaded.spec.model_dump(mode="json"), ids)
    print(f"{loaded.spec.name}: design {fp[:12]} registered in {path}; commit it before "
          "`scm-bench run` so the run is confirmatory (docs/verdicts.md)")  # fmt: skip
    return 0


def with_verdict_commands(p, sub, common: dict):
    """The CLI parser ``p`` with `register SPEC` and `run --pilot` added (``common``: the
    spec help, and the --set and --allow-large argument settings of the other commands).
    --pilot is --set pilot=true: the run's spec.yaml records it."""
    sub.choices["run"].add_argument(
        "--pilot", action="append_const", dest="set", const="pilot=true",
        help="an exploratory run (--set pilot=true): its verdicts are never confirmatory",
    )  # fmt: skip
    s = sub.add_parser("register", help="fix a spec's design before a confirmatory run")
    s.add_argument("spec", metavar="SPEC", help=common["help"])
    s.add_argument("--set", **common["set"])
    s.add_argument("--allow-large", **common["large"])
    s.set_defaults(fn=cmd_register)
    return p
