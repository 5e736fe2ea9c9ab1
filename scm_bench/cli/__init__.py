"""`scm-bench`: parses the arguments (cli/arguments.py), runs one command (cli/commands.py), and
turns what the user can cause into one line and an exit code (the codes: parser.DESCRIPTION)."""

from __future__ import annotations

import logging
import os
import sys
import warnings

from scm_bench.cli.arguments import parser

__all__ = ["main", "parser"]

EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE: the reader went away (`| head`), as Unix tools do


def main(argv: list[str] | None = None) -> int:
    from scm_bench import interrupts, messages
    from scm_bench.errors import UserError

    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # a bare `scm-bench`: the help, not an error
        parser().print_help()
        return 0
    args = parser().parse_args(argv)
    log = logging.getLogger("scm_bench")  # damaged files, stale locks: one "warning:" line each
    if not log.handlers:
        log.addHandler(messages.StderrHandler())  # whatever sys.stderr is when it writes
        log.handlers[0].setFormatter(logging.Formatter("warning: %(message)s"))
    # torch.func.jvp loads TorchScript decompositions on first use and warns about its own
    # internals; nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    interrupts.install()  # SIGTERM and SIGHUP stop as Ctrl-C does
    try:
        return args.fn(args)
    except UserError as err:
        return messages.user_error(err)  # one capped line per problem, exit 2
    except KeyboardInterrupt as err:
        return interrupts.stopped(err)  # one line, 128 + the signal
    except BrokenPipeError:  # `scm-bench expand --json | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return EXIT_CLOSED_PIPE
    except OSError:  # a full disk: one line, exit 1 (resumable); anything else is a bug
        return messages.disk_full()
