"""`python -m scm_bench.cli ...`: the same as `scm-bench ...`."""

import sys

from scm_bench.cli import main

sys.exit(main())
