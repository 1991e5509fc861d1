"""`RayExecutor`: evaluate search trials as Ray tasks, on one machine or a cluster."""

import collections
import concurrent.futures
import os
import threading
import uuid

from tfemergent.utils.validation import validate_float
from tfemergent.utils.validation import validate_int

INSTALL_LINE = "pip install tfemergent[ray]"
# Functions shipped to a worker, deserialised once per worker process (most recent last).
_WORKER_FUNCTIONS = collections.OrderedDict()
_WORKER_CACHE_SIZE = 8


def _import_ray():
    """Import Ray, or raise ``ImportError`` with the install line."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "tfemergent.search.RayExecutor needs Ray, which is not installed. Install it "
            f"with:\n\n    {INSTALL_LINE}\n\n(or `pip install ray`).",
            name="ray",
        ) from error
    return ray


def _run_in_worker(key, boxed_function, args, kwargs):
    """The Ray task: ``fn(*args, **kwargs)``, ``fn`` fetched once per worker process."""
    function = _WORKER_FUNCTIONS.get(key)
    if function is None:
        ray = _import_ray()
        function = ray.get(boxed_function[0])
        _WORKER_FUNCTIONS[key] = function
        while len(_WORKER_FUNCTIONS) > _WORKER_CACHE_SIZE:
            _WORKER_FUNCTIONS.popitem(last=False)
    else:
        _WORKER_FUNCTIONS.move_to_end(key)
    return function(*args, **kwargs)


class _RayFuture(concurrent.futures.Future):
    """A `Future` of one Ray task; cancelling it cancels the task (`ray.cancel`)."""

    def __init__(self, ray, object_ref):
        super().__init__()
        self._ray = ray
        self.object_ref = object_ref

    def cancel(self):
        cancelled = super().cancel()
        if cancelled:
            try:
                self._ray.cancel(self.object_ref)
            except Exception:  # noqa: BLE001 - e.g. the task finished meanwhile
                pass
        return cancelled


class RayExecutor(concurrent.futures.Executor):
    """Runs ``fn(trial)`` as Ray tasks, so a search scales from one machine to a cluster.

    A `concurrent.futures.Executor` for `SearchRunner` (``executor=``): the
    search code does not change when it outgrows one machine. Each
    ``submit(fn, trial)`` starts one Ray task that declares the resources
    given here (``.options(num_cpus=..., num_gpus=..., memory=...,
    max_retries=...)``), so Ray places as many trials at once as the cluster
    has room for, and returns a `concurrent.futures.Future` of ``fn(trial)``.

    **Ray itself.** The executor calls ``ray.init(address=address,
    **init_kwargs)`` only if Ray is not initialised yet in this process:
    ``address=None`` connects to the cluster named by the ``RAY_ADDRESS``
    environment variable, else starts a local Ray instance (``"auto"``
    connects to a running local cluster, ``"ray://host:10001"`` to a remote
    one). `shutdown` (also at the end of a ``with`` block) shuts Ray down only
    if this executor started it. Ray is imported when the executor is
    created; without it: ``ImportError`` with the install line ``pip install
    tfemergent[ray]``.

    **Faults.** A task whose worker process dies (killed, out of memory, a
    crash, a lost node) is run again, up to ``max_retries`` times, by Ray; an
    exception raised by ``fn`` is not retried and reaches the future (then
    `SearchRunner` stops with it, its checkpoint intact). A diverged candidate
    that returns a non-finite fitness is a failed trial, not an error (see
    `SearchRunner`). Since `SearchRunner` checkpoints every result in the
    driver, a killed driver resumes from its directory, with this executor or
    any other, to the same result.

    **Shipping ``fn``.** ``fn`` is serialised (cloudpickle) once per executor
    and object (``ray.put``), and deserialised once per worker process, then
    reused for every trial that worker runs: a heavy evaluator (e.g. one
    holding a dataset and a model) is not rebuilt per trial. Hence ``fn`` must
    not rely on state it changes itself, nor be changed after its first
    `submit`; modules it refers to by name must be importable by the
    workers. Trial directories (``trial.directory``) must be on a file system
    shared by the driver and the workers (always so on one machine).

    Cancelling a returned future cancels its Ray task (``ray.cancel``): a
    task that has not started never runs; a running one is interrupted.

    Args:
        num_cpus: float >= 0, CPUs each task reserves (1: one trial per core).
        num_gpus: float >= 0, GPUs each task reserves (fractions share a GPU).
        memory: None or int >= 1, bytes of memory each task reserves (Ray's
            scheduling hint; None: no reservation).
        max_retries: int >= -1, how often Ray runs a task again after its
            worker died (-1: without limit, 0: never).
        address: None or str, the cluster to connect to if Ray is not
            initialised yet (see above).
        init_kwargs: None or dict of further ``ray.init`` arguments (e.g.
            ``{"num_cpus": 8}`` for a local instance), used only when this
            executor starts Ray.

    Attributes:
        started_ray: bool, whether this executor called ``ray.init``.

    Example (a local Ray instance with 2 CPUs unless Ray is running already;
    on a cluster: ``RayExecutor(address="auto")`` or ``RAY_ADDRESS``):

    >>> from tfemergent import search
    >>> class Line(search.SearchSpace):
    ...     def sample(self, rng):
    ...         return [int(rng.integers(0, 10))]
    >>> def evaluate(trial):
    ...     return {"fitness": -abs(trial.params[0] - 7)}
    >>> strategy = search.RandomSearch(Line(), num_trials=6, batch_size=3, seed=0)
    >>> with search.RayExecutor(init_kwargs={"num_cpus": 2}) as executor:
    ...     result = search.SearchRunner(strategy, evaluate, executor=executor,
    ...                                  verbose=0).run()
    >>> result.best_trial.params, result.best_result
    ([8], {'fitness': -1.0})
    """

    def __init__(
        self,
        num_cpus=1,
        num_gpus=0,
        memory=None,
        max_retries=3,
        address=None,
        init_kwargs=None,
    ):
        self.num_cpus = validate_float("num_cpus", num_cpus, minimum=0.0)
        self.num_gpus = validate_float("num_gpus", num_gpus, minimum=0.0)
        self.memory = validate_int("memory", memory, minimum=1, allow_none=True)
        self.max_retries = validate_int("max_retries", max_retries, minimum=-1)
        if address is not None and not (isinstance(address, str) and address):
            raise ValueError(
                "Argument `address` must be None (RAY_ADDRESS, else a local Ray instance) or "
                "a Ray cluster address such as 'auto' or 'ray://host:10001'. "
                f"Received: address={address!r}"
            )
        self.address = address
        if init_kwargs is not None and not (
            isinstance(init_kwargs, dict) and all(isinstance(key, str) for key in init_kwargs)
        ):
            raise ValueError(
                "Argument `init_kwargs` must be None or a dict of `ray.init` keyword "
                f"arguments. Received: init_kwargs={init_kwargs!r}"
            )
        if init_kwargs is not None and "address" in init_kwargs:
            raise ValueError(
                "Argument `init_kwargs` must not contain 'address'; pass it as "
                f"`address`. Received: init_kwargs={init_kwargs!r}"
            )
        self.init_kwargs = dict(init_kwargs or {})
        ray = _import_ray()
        self._ray = ray
        self.started_ray = False
        if not ray.is_initialized():
            ray.init(address=address, **self.init_kwargs)
            self.started_ray = True
        self._remote = ray.remote(_run_in_worker)
        self._shipped = {}  # id(fn) -> (fn, key, object ref)
        self._futures = set()
        self._lock = threading.Lock()
        self._shut_down = False

    def _options(self):
        options = {
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "max_retries": self.max_retries,
            "retry_exceptions": False,
        }
        if self.memory is not None:
            options["memory"] = self.memory
        return options

    def submit(self, fn, /, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` as a Ray task; return its `concurrent.futures.Future`."""
        if not callable(fn):
            raise ValueError(f"Argument `fn` must be callable. Received: fn={fn!r}")
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot schedule new futures after shutdown")
            shipped = self._shipped.get(id(fn))
            if shipped is None:
                key = f"{os.getpid()}-{uuid.uuid4().hex}"
                shipped = (fn, key, self._ray.put(fn))
                self._shipped[id(fn)] = shipped  # keeps fn alive: its id stays unique
            _, key, function_ref = shipped
            # The reference is boxed in a list so that Ray does not resolve it: a
            # worker fetches the function only the first time it meets its key.
            object_ref = self._remote.options(**self._options()).remote(
                key, [function_ref], args, kwargs
            )
            future = _RayFuture(self._ray, object_ref)
            self._futures.add(future)
        object_ref.future().add_done_callback(
            lambda ray_future: self._transfer(ray_future, future)
        )
        return future

    def _transfer(self, ray_future, future):
        with self._lock:
            self._futures.discard(future)
        if future.cancelled():
            return
        try:
            error = ray_future.exception()
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(ray_future.result())
        except concurrent.futures.InvalidStateError:  # cancelled meanwhile
            pass
        except concurrent.futures.CancelledError as error:
            try:
                future.set_exception(error)
            except concurrent.futures.InvalidStateError:
                pass

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Stop accepting trials; wait for (or cancel) the running ones; stop Ray if started here.

        Args:
            wait: whether to wait for the submitted tasks to finish.
            cancel_futures: whether to cancel the tasks that have not finished.
        """
        with self._lock:
            already = self._shut_down
            self._shut_down = True
            futures = list(self._futures)
        if already:
            return
        if cancel_futures:
            for future in futures:
                future.cancel()
        if wait:
            concurrent.futures.wait(futures)
        self._shipped = {}
        if self.started_ray and self._ray.is_initialized():
            self._ray.shutdown()

    def __repr__(self):
        return (
            f"RayExecutor(num_cpus={self.num_cpus:g}, num_gpus={self.num_gpus:g}, "
            f"memory={self.memory}, max_retries={self.max_retries}, "
            f"address={self.address!r})"
        )
