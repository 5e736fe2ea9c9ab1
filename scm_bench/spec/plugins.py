"""A spec's ``plugins:``: the user's modules that register technique values, networks,
datasets and metrics, imported before the spec is validated.

Each module is imported from the spec's folder first (a sibling ``my_tangent.py``), then from
the installed packages. The modules imported are recorded in the environment variable
``core.choices.PLUGINS_ENV``, which the processes this one starts (a local Ray and its
workers) inherit and import on first use of a registry.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from pathlib import Path

from scm_bench.core.choices import ENTRY_POINTS, PLUGINS_ENV, discover, import_plugin
from scm_bench.errors import did_you_mean
from scm_bench.safe_yaml import YamlLoadError, load_yaml


def _missing(err: ModuleNotFoundError, module: str) -> bool:
    """Whether the module itself (or its package) is missing, not one it imports."""
    return err.name is not None and (module == err.name or module.startswith(err.name + "."))


def _where_it_failed(err: BaseException, folder: Path) -> str:
    """' (file.py line N)': the last frame of the traceback in the user's folder, if any."""
    frames = traceback.extract_tb(err.__traceback__)
    frames = [f for f in frames if f.filename.startswith(str(folder))]
    return f" ({Path(frames[-1].filename).name} line {frames[-1].lineno})" if frames else ""


def record(module: str, folder: str) -> None:
    """Add (module, folder) to ``PLUGINS_ENV`` for the processes this one starts."""
    entries = json.loads(os.environ.get(PLUGINS_ENV) or "[]")
    if [module, folder] not in entries:
        os.environ[PLUGINS_ENV] = json.dumps([*entries, [module, folder]])


def load_plugins(modules: object, spec_file: Path, folder: Path | None = None) -> list[str]:
    """Import the modules a spec names, from ``folder`` (default: the spec's) first; one line
    per problem (``FILE: plugins[i]: ...``)."""
    where, folder = str(spec_file), Path(folder or Path(spec_file).parent).resolve()
    try:
        discover()  # installed plugins (entry points), whether or not the spec names any
    except Exception as err:
        return [f"{where}: plugins: importing the installed plugins (entry points of "
                f"{ENTRY_POINTS}) or those in ${PLUGINS_ENV} failed: {type(err).__name__}: "
                f"{err}"]  # fmt: skip
    if not isinstance(modules, list):
        return [f"{where}: plugins: must be a list of module names, e.g. [my_tangent]"]
    problems = []
    for i, module in enumerate(modules):
        if not isinstance(module, str) or not module.replace(".", "").replace("_", "").isalnum():
            continue  # the schema reports a malformed name
        try:
            import_plugin(module, str(folder))
        except ModuleNotFoundError as err:
            if not _missing(err, module):
                raise_line = f"importing {module} failed: {err}{_where_it_failed(err, folder)}"
                problems.append(f"{where}: plugins[{i}]: {raise_line}")
                continue
            local = [p.stem for p in folder.glob("*.py")]
            problems.append(
                f"{where}: plugins[{i}]: no module {module!r} in {folder} or installed"
                f"{did_you_mean(module, local)}"
            )
            continue
        except Exception as err:  # the user's module raised: one line, where it failed
            line = f"{type(err).__name__}: {err}".splitlines()[0]
            problems.append(
                f"{where}: plugins[{i}]: importing {module} failed: {line}"
                f"{_where_it_failed(err, folder)}"
            )
            continue
        record(module, str(folder))
    return problems


def load_run_plugins(run_dir: Path) -> None:
    """The plugins a finished run's spec.yaml names, from the current folder first (where the
    run was started, its spec beside it), for reading its models (`scm-bench sample`). One
    that cannot be imported is a warning: a model whose net and data need no plugin (a tangent
    plugin's) still loads, and one that does says which value it lacks."""
    path = Path(run_dir) / "spec.yaml"
    try:
        modules = (load_yaml(path.read_text(encoding="utf-8"), str(path)) or {}).get("plugins")
    except (OSError, UnicodeDecodeError, YamlLoadError, AttributeError):
        return  # no readable spec: a model with a plugin value then says what it lacks
    for problem in load_plugins(modules or [], path, Path.cwd()):
        logging.getLogger("scm_bench").warning(f"{problem}; run this from the spec's folder")
