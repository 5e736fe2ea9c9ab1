"""Reports of an ablation run: verdicts on the spec's claims (paired per-seed statistics,
``report.stats``), tables with bounded 95% intervals, noise floors, figures, sample grids.

write_report(run_dir)   -> (report.md, report.html), plus run_dir/report/ (figures, table.csv)
write_index(reports_dir) -> (index.md, index.html) linking every report below it
"""

from scm_bench.report.index import write_index
from scm_bench.report.load import Run, load_run
from scm_bench.report.meta import collect_meta
from scm_bench.report.table import main_table, metric_columns
from scm_bench.report.write import write_report

__all__ = [
    "Run",
    "collect_meta",
    "load_run",
    "main_table",
    "metric_columns",
    "write_index",
    "write_report",
]
