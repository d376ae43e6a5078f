"""Kernels started ahead of time for the jobs of one worker process (a sweep's): the next job's kernel boots
while the current job runs, and a finished job's kernel shuts down in the background.

Most of a small job's time is a kernel booting (a Python process importing ipykernel) and shutting down,
not its cells. A spare kernel is started with the worker's environment; the job's own settings (its run
key, notebook path, cache switch...) and working directory reach it just before the notebook runs, by a
silent execution that leaves no trace in the notebook (no execution count, no history, no new names).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlops_nb.jobs.kernel_env import KERNEL_ENV

_lock = threading.Lock()
_spare: Any = None  # a JobKernelManager whose kernel is booting or idle
_stopping: list[threading.Thread] = []


@functools.cache
def manager_class() -> Any:
    """``JobKernelManager``, the kernel manager of jobs (defined on first use: jupyter_client loads then)."""
    from jupyter_client.manager import AsyncKernelManager

    class JobKernelManager(AsyncKernelManager):  # type: ignore[misc]
        """Starts a kernel with Ctrl-C held (``signals_held``); shuts an idle kernel down without interrupting
        it first.

        jupyter_client interrupts every kernel before asking it to shut down; the interrupt lands in
        whatever message handler the kernel is in and it logs ``KeyboardInterrupt caught in kernel``. A
        job's kernel is idle when its job ends, or was interrupted and waited for already (see the engine).
        """

        async def start_kernel(self, **kwargs: Any) -> None:
            with signals_held():
                await super().start_kernel(**kwargs)

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            if now or restart or not self.owns_kernel or not self.has_kernel:
                await super().shutdown_kernel(now=now, restart=restart)
                return
            self.shutting_down = True
            self.stop_restarter()
            await self.request_shutdown()
            await self.finish_shutdown()
            await self.cleanup_resources()

    return JobKernelManager


@contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done, then act as they would have.

    A kernel's launch must not be cut in two: a Ctrl-C (a KeyboardInterrupt raised wherever the main thread
    is) between the fork and the moment the kernel manager holds the new process would leave a kernel that
    nobody stops, holding the command's stdout. Only the main thread sets handlers, and only it runs them:
    elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    held = {
        signum: signal.signal(signum, lambda signum, _: arrived.append(signum))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)
        if arrived:
            signal.raise_signal(arrived[0])


def encryption() -> dict[str, str]:
    """Kernel manager settings that encrypt the kernel's sockets (CurveZMQ) when the kernelspec says it can.

    A job's kernel listens on local TCP ports; with the keys provisioned by jupyter_client (8.10 and newer,
    pyzmq built with Curve) nothing else on the machine can read or drive it, and ipykernel no longer warns
    about plain-text TCP on every start. Kernels that do not declare support run as before.
    """
    import zmq
    from jupyter_client.manager import KernelManager

    if "transport_encryption" not in KernelManager.class_trait_names() or not zmq.has("curve"):
        return {}
    return {"transport_encryption": "auto"}


def start(kernel_name: str, env: dict[str, str], cwd: str) -> Any:
    """Start a kernel (not waiting for it to be ready); ``started_env`` remembers its environment."""
    from jupyter_core.utils import run_sync

    from mlops_nb.jobs.zygote import ZygoteProvisioner

    km = manager_class()(kernel_name=kernel_name, **encryption())
    km.kernel_id = str(uuid.uuid4())
    # jupyter_client's public way to choose a provisioner is the kernel spec's metadata, which is the user's
    # (python3), not ours to change; a manager whose public ``provisioner`` is set keeps it at start.
    km.provisioner = ZygoteProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
    km.started_env = dict(env)
    # As nbclient starts its kernels: IPython's history in memory, not in the user's profile database.
    extra = ["--HistoryManager.hist_file=:memory:"] if km.ipykernel else []
    run_sync(km.start_kernel)(env=km.started_env, cwd=cwd, extra_arguments=extra)
    return km


def prestart(kernel_name: str) -> None:
    """Start a spare kernel for the next job, unless one is there already."""
    global _spare
    with _lock:
        if _spare is None:
            _spare = start(kernel_name, {**KERNEL_ENV, **os.environ}, str(Path.cwd()))


def take(kernel_name: str) -> Any | None:
    """The spare kernel if it runs ``kernel_name`` and is alive (it is no longer spare), else None."""
    global _spare
    from jupyter_core.utils import run_sync

    with _lock:
        km, _spare = _spare, None
    if km is None:
        return None
    if km.kernel_name != kernel_name or not run_sync(km.is_alive)():
        stop_later(km)
        return None
    return km


def setup_code(env: dict[str, str], started_env: dict[str, str], cwd: str) -> str:
    """Code that gives a spare kernel (started with ``started_env``) a job's environment and working
    directory, defining no names."""
    changed = {k: v for k, v in env.items() if started_env.get(k) != v}
    return f"__import__('os').environ.update({json.dumps(changed)}); __import__('os').chdir({json.dumps(cwd)})"


def stop_later(km: Any) -> None:
    """Shut a kernel down in the background (its journal is sent once it has exited)."""
    thread = threading.Thread(target=_shutdown, args=(km,), daemon=True)
    thread.start()
    _stopping.append(thread)


def _shutdown(km: Any) -> None:
    # asyncio.run closes the thread's event loop afterwards: jupyter_core's run_sync would leave one per
    # thread, an epoll descriptor and a socket pair each, three descriptors per job of a long sweep.
    import asyncio

    asyncio.run(km.shutdown_kernel(now=False))


def close(timeout: float = 30.0) -> None:
    """Stop the spare kernel and wait for kernels being shut down (a worker's last act)."""
    global _spare
    with _lock:
        km, _spare = _spare, None
    if km is not None:
        stop_later(km)
    for thread in _stopping:
        thread.join(timeout)
    _stopping.clear()
    from mlops_nb.jobs import zygote

    zygote.stop()
