"""Where trials run: joining a Ray cluster or starting a local one, and checking resources."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import ray

from scm_bench import interrupts
from scm_bench.core.choices import PLUGINS_ENV
from scm_bench.errors import RunError
from scm_bench.spec import AblationSpec, Trial

LOCAL = "127.0.0.1"
PACKAGE = Path(__file__).resolve().parents[1]  # the scm_bench package folder


def token_available() -> bool:
    """A Ray auth token where Ray's own CLI looks: $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, or
    ~/.ray/auth_token (written by `ray start` / `ray get-auth-token --generate`)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return Path(path).is_file() and Path(path).stat().st_size > 0


def use_token_auth(address: str) -> None:
    """Join a cluster the way `ray start` does: with token authentication when a token is
    available (Ray itself only does this for a cluster it finds on its own, never for an
    explicit address), else a one-line RunError saying how to give the token."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None:  # the user chose; respect it
        return
    if token_available():
        os.environ["RAY_AUTH_MODE"] = "token"
        # `import ray` has read RAY_AUTH_MODE already; refresh Ray's cached config so this
        # process (and the Ray Client channel) sends the token, as Ray's own auto-connect does.
        from ray._raylet import Config

        Config.initialize("")
        return
    raise RunError(
        f"--address {address}: no Ray auth token found; copy the head's token (`ray "
        "get-auth-token` on the head) to ~/.ray/auth_token, or set RAY_AUTH_TOKEN or "
        "RAY_AUTH_TOKEN_PATH (RAY_AUTH_MODE=disabled only for a cluster started without auth)"
    )


_verbose = False  # set_verbosity: whether Ray forwards its workers' logs to the driver
QUIET = (  # loggers silenced (below ERROR) unless verbose
    # the notice, at every start of a local Ray, that token authentication is on (the README
    # says so once; `--dashboard` prints how to sign in)
    "ray._private.authentication.authentication_token_setup",
    # Tune's "The `process_trial_result` operation took 2.3 s, which may be a performance
    # bottleneck" (a logger callback's first call, e.g. MLflow creating its experiment)
    "ray.tune.utils.util",
)


def set_verbosity(verbose: bool) -> None:
    """Quiet by default: no Optuna study line, no Ray token notice or slowness hints, no
    worker logs; verbose shows Ray's and Optuna's logs (and the trials' own output)."""
    import optuna

    global _verbose
    _verbose = verbose
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)


def plugin_env() -> dict:
    """The spec's plugins (``core.choices.PLUGINS_ENV``) for a cluster's workers, which do not
    inherit this process's environment as a local Ray's do: ``{"env_vars": ...}`` or {}."""
    plugins = os.environ.get(PLUGINS_ENV)
    return {"env_vars": {PLUGINS_ENV: plugins}} if plugins else {}


@contextlib.contextmanager
def loopback_node() -> Iterator[None]:
    """A local Ray whose node IP stays 127.0.0.1. ``ray.init`` replaces a loopback
    ``_node_ip_address`` by the machine's address (``services.resolve_ip_for_localhost``), and
    Ray's processes bind to the node IP: the reporter agent's, dashboard head's and autoscaler
    monitor's Prometheus endpoints then answered on every interface without a token, the
    agents' HTTP and gRPC servers on the machine's address. Kept on loopback, every one of
    them listens on 127.0.0.1 only (``ss -ltnp``; tests/test_listeners.py)."""
    from ray._private import services

    resolve = getattr(services, "resolve_ip_for_localhost", None)
    if resolve is None:  # another Ray: tests/test_listeners.py says whether it still binds wide
        yield
        return
    services.resolve_ip_for_localhost = lambda host: host
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = resolve


def connect(address: str | None, dashboard: bool, host: str, echo) -> bool:
    """Join an existing Ray (``address`` or RAY_ADDRESS) or start a local one; True if started."""
    # A failing trial is reported in one line (full traceback in its error.txt), not through
    # Tune's error log with two tracebacks.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    if address != "local":
        use_token_auth(address)
    kwargs = {"address": address, "log_to_driver": _verbose, "configure_logging": False}
    if address == "local":  # the node's IP on loopback: its metrics endpoint binds there too
        kwargs.update(include_dashboard=dashboard, dashboard_host=host, _node_ip_address=LOCAL)
        with loopback_node():
            ctx = ray.init(**kwargs)
    else:  # the cluster runs this driver's scm_bench, not whatever its nodes have installed
        kwargs.update(runtime_env={"py_modules": [str(PACKAGE)], **plugin_env()})
        ctx = ray.init(**kwargs)
    interrupts.install()  # ray.init replaced the SIGTERM handler (exit 1 or 15, a C++ dump)
    if dashboard:
        url = f"http://{ctx.dashboard_url}" if ctx.dashboard_url else "(dashboard not available)"
        echo(f"Ray dashboard: {url}")
        echo(
            "  token authentication is on: sign in with the token printed by "
            "`ray get-auth-token` (stored in ~/.ray/auth_token), or send the header "
            "'Authorization: Bearer <token>'"
        )
        port = next((n.get("MetricsExportPort") for n in ray.nodes() if n.get("Alive")), None)
        echo(
            f"  live trial metrics (Prometheus format, tag trial_id): "
            f"http://127.0.0.1:{port}/metrics -> ray_scm_bench_loss, ray_scm_bench_grad_norm, "
            "ray_scm_bench_g_norm, ray_scm_bench_steps_per_sec, ray_scm_bench_diverged"
        )
    return address == "local"


def check_resources(spec: AblationSpec, trials: list[Trial]) -> None:
    check_workers(spec, trials)
    res, gpus = spec.resources, ray.cluster_resources().get("GPU", 0)
    if res.gpu * res.workers > gpus:
        raise RunError(
            f"resources.gpu: {res.gpu:g} GPU per trial (x {res.workers} worker(s)) asked, but "
            f"the Ray cluster has {gpus:g}; set resources.gpu: 0 or use --address with a GPU "
            "cluster"
        )
    if gpus == 0 and any(t.spec.device == "cuda" for t in trials):
        raise RunError(
            "trial.device: cuda asked, but the Ray cluster has no GPU; use device: auto or cpu"
        )
    for name, amount in res.custom.items():
        if amount * res.workers > ray.cluster_resources().get(name, 0):
            raise RunError(
                f"resources.custom.{name}: {amount:g} per trial (x {res.workers} worker(s)) "
                f"asked, but the cluster has {ray.cluster_resources().get(name, 0):g}; start a "
                f"node with `ray start --resources '{{\"{name}\": N}}'` or drop it"
            )
    if res.cpu * res.workers > ray.cluster_resources().get("CPU", 0):
        raise RunError(
            f"resources.cpu: {res.cpu:g} CPUs per trial (x {res.workers} worker(s)) asked, but "
            f"the cluster has {ray.cluster_resources().get('CPU', 0):g}"
        )


def check_workers(spec: AblationSpec, trials: list[Trial]) -> None:
    """Multi-worker trials: whole GPUs (NCCL runs one worker per GPU) and global batches that
    split evenly between the workers."""
    n = spec.resources.workers
    if n > 1 and 0 < spec.resources.gpu < 1:
        raise RunError(
            f"resources.gpu: {spec.resources.gpu:g} with resources.workers: {n}; multi-worker "
            "trials need whole GPUs (NCCL: one worker per GPU); use gpu: 1 or workers: 1"
        )
    for t in trials:
        sizes = {"train.batch_size": t.spec.train.batch_size}
        if t.spec.needs_teacher():
            sizes["teacher.batch_size"] = t.spec.teacher.batch_size
        for path, size in sizes.items():
            if size % n:
                raise RunError(
                    f"{path}: {size} does not split between resources.workers: {n}; use a "
                    "multiple of the number of workers"
                )
