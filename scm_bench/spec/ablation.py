"""The ablation spec: a base trial, axes over dotted paths, seeds, and an optional search."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import Field, StrictFloat, StrictInt, field_validator

from scm_bench.names import run_name_problem
from scm_bench.spec.claims import Claim
from scm_bench.spec.gates import Gate
from scm_bench.spec.schema import Section
from scm_bench.spec.sections import MAX_SEED

PLUGIN_MODULE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"  # a dotted module name


class Resources(Section):
    cpu: StrictFloat = Field(1.0, gt=0, description="CPUs reserved per trial (also torch threads).")
    gpu: StrictFloat = Field(
        0.0,
        ge=0,
        description="GPUs per trial (per worker); a fraction such as 0.25 packs small trials on "
        "one GPU; refused up front if the cluster has too few.",
    )
    workers: StrictInt = Field(
        1,
        ge=1,
        description="Data-parallel workers per trial (Ray Train; gloo on CPU, NCCL on GPU), each "
        "with cpu and gpu above; train.batch_size is the global batch, split between them.",
    )
    custom: dict[str, StrictFloat] = Field(
        default_factory=dict,
        description="Custom Ray resources per trial (per worker), e.g. {large_mem: 1}: runs trials "
        "only on the nodes started with them (`ray start --resources`); refused up front if the "
        "cluster has too few.",
    )


class SearchParam(Section):
    type: Literal["uniform", "loguniform", "int", "choice"] = Field(
        description="uniform / loguniform over [low, high], int in [low, high], or choice."
    )
    low: StrictFloat | None = Field(None, description="Lower bound (uniform, loguniform, int).")
    high: StrictFloat | None = Field(None, description="Upper bound (uniform, loguniform, int).")
    values: list[Any] | None = Field(None, description="Candidates (choice).")


class SearchSpec(Section):
    metric: str = Field(description="Result column to optimize, e.g. swd_2step or fid_1step.")
    num_samples: StrictInt = Field(8, ge=1, description="Trials Optuna proposes.")
    params: dict[str, SearchParam] = Field(description="Dotted trial path -> search range.")


class FailureSpec(Section):
    max_retries: StrictInt = Field(
        1, ge=0, description="Retries of a crashed trial before 'failed'."
    )


class AblationSpec(Section):
    name: str = Field(
        description="Spec name: run directory and trial-id prefix (1-100 characters from "
        "A-Z a-z 0-9 _ . -, starting with a letter or digit).",
    )
    description: str = Field("", description="The paper claim the ablation tests.")
    base: str | None = Field(
        None,
        description="Base spec: a file beside this one, else a bundled base by name (grid, "
        "base/grid.yaml: `scm-bench ls bases`).",
    )
    plugins: list[Annotated[str, Field(pattern=PLUGIN_MODULE)]] = Field(
        default_factory=list,
        description="Python modules that register their own values of technique switches, "
        "networks, datasets or metrics (docs/plugins.md); each is imported from the spec's "
        "folder first, then from the installed packages.",
    )
    trial: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the trial spec (see `scm-bench ls`)."
    )
    axes: dict[str, list[Any]] = Field(
        default_factory=dict, description="Grid: dotted trial path -> list of values."
    )
    zip: list[dict[str, list[Any]]] = Field(
        default_factory=list,
        description="Groups of axes that change together (equal-length lists within a group).",
    )
    seeds: list[Annotated[StrictInt, Field(ge=0, le=MAX_SEED)]] = Field(
        default_factory=lambda: [0],
        min_length=1,
        description="Seeds of every variant (each >= 0).",
    )
    baseline: dict[str, Any] | None = Field(
        None, description="Axis values of the baseline variant (reports diff against it)."
    )
    resources: Resources = Field(Resources(), description="Resources per trial (Ray).")
    failure: FailureSpec = Field(FailureSpec(), description="Retry policy for crashed trials.")
    search: SearchSpec | None = Field(
        None, description="Tune with Optuna instead of a grid (axes must then be empty)."
    )
    claims: list[Claim] = Field(
        default_factory=list,
        description="What the paper says a variant does to a metric; the report opens with "
        "one verdict per claim (fields below).",
    )
    gates: list[Gate] = Field(
        default_factory=list,
        description="Validity gates: a claim whose gate fails reads 'invalid regime' "
        "(docs/verdicts.md); sample-metric claims also need their baseline to beat uniform.",
    )
    pilot: bool = Field(
        False,
        description="Set by `scm-bench run --pilot`: the run is exploratory, its verdicts never "
        "confirmatory (not part of the registered design).",
    )

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        problem = run_name_problem(name)
        if problem:
            raise ValueError(problem)
        return name

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        repeated = sorted(s for s, n in Counter(seeds).items() if n > 1)[:10]
        if repeated:
            raise ValueError(f"seeds must be distinct; repeated: {repeated}")
        return seeds
