"""mathpool from Python: a persistent pool of worker processes running analysis plugins.

    import mathpool
    with mathpool.Pool(workers=2) as pool:
        f = pool.submit("lfsr.polynomial", {"field": 2, "coefficients": [1, 1, 0, 1]})
        print(f.result()["is_primitive"])
        for r in pool.imap("example.echo", ({"x": i} for i in range(10**6))):
            ...

See docs/python.md for the whole API: Pool (submit, map, imap, stats,
shutdown), acquire, run, plugins, describe, the value conversions and the
exceptions.
"""

import atexit as _atexit
import concurrent.futures as _futures
import os as _os
import sys as _sys
import weakref as _weakref

from . import _mathpool as _core

__all__ = [
    "Pool", "acquire", "run", "plugins", "describe", "version",
    "Error", "TaskError", "Crashed", "Timeout", "MemoryLimit", "InvalidParams", "PluginError",
    "ResultTooLarge", "ProtocolError",
]


class Error(Exception):
    """A pool or config error, with the text `mathpool` (the command) prints.

    .kind is the error kind (e.g. "invalid_config", "plugin_error", "io_error");
    .message the text.
    """

    def __init__(self, message, kind=None):
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind

    kind = None


class TaskError(Error):
    """A task that did not succeed. .kind and .message are those of its result
    record's error; .task is a dict: analysis, params, index (its position in a
    map/imap, None for submit), worker (pid), attempts, seconds, status."""

    def __init__(self, message, kind=None, task=None):
        super().__init__(message, kind)
        self.task = task if task is not None else {}

    def __reduce__(self):
        return (type(self), (self.message, self.kind, self.task))


class Crashed(TaskError):
    """The worker died running the task (a signal or an exit), or the task was cancelled."""
    kind = "crashed"


class Timeout(TaskError):
    """The task ran past the pool's task_timeout and its worker was stopped."""
    kind = "timeout"


class MemoryLimit(TaskError):
    """The worker ran out of the pool's memory_limit."""
    kind = "memory"


class InvalidParams(TaskError):
    """The analysis refused the parameters (the message names the parameter)."""
    kind = "invalid_params"


class PluginError(TaskError):
    """The analysis failed (an exception in the plugin)."""
    kind = "plugin_error"


class ResultTooLarge(TaskError):
    """The task's result passes the protocol's limits (256 MiB encoded, 200 levels deep)."""
    kind = "result_too_large"


class ProtocolError(TaskError):
    """The host refused the worker's reply to the task."""
    kind = "protocol_error"


_KINDS = {c.kind: c for c in (Crashed, Timeout, MemoryLimit, InvalidParams, PluginError, ResultTooLarge,
                              ProtocolError)}


def _task_error(kind, message, task):
    return _KINDS.get(kind, TaskError)(message, kind, task)


_core._setup(Error, _task_error, _futures.Future)

version = _core.version
__version__ = _core.version()

_ERRORS = ("raise", "return")
_live = _weakref.WeakSet()  # pools to close at exit, before the interpreter goes


def _options(options):
    """Pool keyword arguments as the C++ side takes them (the config's `pool:` keys)."""
    paths = options.get("plugin_path")
    if paths is not None:
        if isinstance(paths, (str, bytes, _os.PathLike)):
            paths = [paths]
        try:
            options["plugin_path"] = [_os.fsdecode(p) for p in paths]
        except TypeError:
            pass  # the C++ side names the option and what it takes
    return options


def _check_errors(errors):
    if errors not in _ERRORS:
        raise ValueError(f"errors must be 'raise' or 'return', got {errors!r}")
    return errors == "return"


class Pool(_core.Pool):
    """A pool of worker processes that load the plugins once and run tasks until shutdown.

    Keyword arguments are the keys of a config's `pool:` section, with the
    same values: workers (int or "auto"), start ("zygote" or "spawn"),
    isolation ("worker" or "task"), task_timeout ("30s", seconds as a number,
    or None), memory_limit ("2GiB", bytes, or None), max_tasks_per_worker,
    retries, chunk_size (int or "auto"), setup_timeout; plus plugin_path (a
    path or a list) and allow_insecure_plugins. An unknown key raises
    mathpool.Error naming it. The workers are ready when the constructor
    returns. Use it as a context manager, or call shutdown().
    """

    def __init__(self, **options):
        super().__init__(_options(options), False)
        _live.add(self)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # On an exception (Ctrl-C included) tasks still queued or running are
        # stopped; otherwise every submitted task finishes first.
        self.shutdown(grace=None if exc_type is None else 0)
        return False

    def __repr__(self):
        state = "serving" if self.serving else "shut down"
        return f"<mathpool.Pool {'leased, ' if self.leased else ''}{state}>"

    def imap(self, analysis, iterable, chunksize=None, errors="raise", window=None):
        """Runs `analysis` over each parameter dict of `iterable`, lazily: results
        come in order, and memory stays bounded however long the iterable is
        (at most `window` tasks in flight; None: automatic). A failed task
        raises its TaskError when its turn comes and the iterator goes on;
        with errors="return" the exception object is yielded instead.
        `chunksize`: parameter sets converted and handed to the pool at once
        (None: 256). Ctrl-C stops dispatching, cancels the pool's queued
        tasks and raises KeyboardInterrupt."""
        return self._imap(analysis, iterable, window or 0, chunksize or 0, _check_errors(errors))

    def map(self, analysis, iterable, chunksize=None, errors="raise", window=None):
        """imap collected in a list. With errors="raise" the first failure in
        order is raised (the remaining tasks are not dispatched);
        errors="return" puts the exception objects in place."""
        return self._map(analysis, iterable, window or 0, chunksize or 0, _check_errors(errors))

    def shutdown(self, grace=None):
        """Waits for the submitted tasks (at most `grace` seconds when given, then
        stops them; their futures get Crashed) and stops the workers. A pool from
        acquire() goes back to the registry instead (warm for the next
        acquire). Idempotent."""
        self._close(grace)
        _live.discard(self)

    release = shutdown


def acquire(**options):
    """A pool leased from the process-wide registry: with equal options, the same
    warm pool comes back (its workers parked while nobody holds it). Use it as
    a context manager; leaving it releases the lease (the pool stays warm)."""
    pool = Pool.__new__(Pool)
    _core.Pool.__init__(pool, _options(options), True)
    _live.add(pool)
    return pool


def plugins(plugin_path=None, allow_insecure_plugins=False):
    """Every analysis the plugins provide: the list `mathpool plugins --json` prints."""
    return _core._plugins(_options({"plugin_path": plugin_path, "allow_insecure_plugins": allow_insecure_plugins}))


def describe(name, plugin_path=None, allow_insecure_plugins=False):
    """One analysis's parameters and results: the dict `mathpool describe NAME --json` prints."""
    return _core._describe(name, _options({"plugin_path": plugin_path,
                                           "allow_insecure_plugins": allow_insecure_plugins}))


def run(config_path, output=None, workers=None, resume=False, force=False, trace=None, quiet=True,
        plugin_path=None, allow_insecure_plugins=False):
    """Runs a whole config as `mathpool run` does and returns its summary as a dict
    (planned, skipped, skipped_by_status, skipped_by_run, ok, failed, interrupted,
    by_status, by_run, failures, seconds, workers, restarts, hosts, output,
    provenance).

    output: a file for the records (None: the config's `output`, else this
    process's standard output; "-": standard output). resume/force as the
    command's --resume/--force. quiet=False writes the command's summary to
    sys.stderr. trace: a file for the run's Chrome trace (the command's --trace).
    """
    if resume and force:
        raise Error("resume and force cannot both be set", "invalid_config")
    config_path = _os.fsdecode(config_path)
    if output is not None:
        output = _os.fsdecode(output)
    command = [_sys.executable] + list(_sys.argv) + [f"mathpool.run({config_path!r})"]
    options = _options({"plugin_path": plugin_path, "allow_insecure_plugins": allow_insecure_plugins})
    if trace is not None:
        trace = _os.fsdecode(trace)
    return _core._run(config_path, output, workers, resume, force, quiet, command, options, trace)


@_atexit.register
def _close_all():
    # Before the interpreter goes: the pools' threads need it to finish futures.
    for pool in list(_live):
        try:
            pool.shutdown(grace=2.0)
        except Exception:
            pass
