"""Kernels forked from a warm template, for the jobs of a sweep's worker.

Starting a Python kernel costs about 0.2 s of CPU before it runs anything: the interpreter starts and
imports ipykernel, IPython, pyzmq and debugpy (for the kernel's debugger). A sweep starts one kernel per job,
on a machine whose cores the kernels share. The zygote is a small process that imports those modules once
and then forks a fresh kernel for each request: the child gets the job's environment, working directory,
arguments and a new random seed, and runs ``IPKernelApp`` as ``python -m ipykernel_launcher`` would (told,
as jupyter_client tells its kernels, to exit when its parent does). No user code has run in the zygote; its
children start from the same state as a new interpreter with those modules imported.

``ZygoteProvisioner`` is the jupyter_client side: it launches through the zygote, and watches and signals
the kernel through a pidfd, as the kernel is the zygote's child, not ours. Only kernels whose kernelspec runs
this interpreter's ``ipykernel_launcher`` are forked; any other kernel starts the usual way.

A tune's workers also name the installed libraries its notebook imports (``PRELOAD_ENV``): the zygote imports
them once, so that each trial's kernel does not spend seconds of CPU importing scikit-learn again. Those
modules are then imported before the notebook runs, as in a kernel where an earlier cell imported them;
NumPy's global generator is reseeded in each kernel.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

from mlops_nb.jobs.kernel_env import KERNEL_ENV, PRELOAD_ENV

_lock = threading.Lock()
_zygote: subprocess.Popen[bytes] | None = None


class _ForkedKernel:
    """The parts of ``subprocess.Popen`` that jupyter_client uses, for a process that is not our child."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:  # it exited already
            self._fd = -1
            self.returncode = 0

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._fd], [], [], 0)[0]:
            self.returncode = 0  # its exit status went to the zygote
            os.close(self._fd)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._fd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
            self.poll()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def forkable(cmd: list[str]) -> bool:
    """True for this interpreter's ``-m ipykernel_launcher -f FILE ...``, the kernels the zygote can make."""
    return (
        len(cmd) >= 5
        and os.path.realpath(cmd[0]) == os.path.realpath(sys.executable)
        and cmd[1:4]
        == [
            "-m",
            "ipykernel_launcher",
            "-f",
        ]
    )


def _fork(argv: list[str], env: dict[str, str], cwd: str) -> int:
    global _zygote
    with _lock:
        if _zygote is None or _zygote.poll() is not None:
            _zygote = subprocess.Popen(
                [sys.executable, "-m", "mlops_nb.jobs.zygote"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**KERNEL_ENV, **os.environ},  # the zygote imports debugpy for all its kernels
            )
        assert _zygote.stdin is not None and _zygote.stdout is not None
        _zygote.stdin.write(json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode() + b"\n")
        _zygote.stdin.flush()
        answer = _zygote.stdout.readline()
    if not answer:
        raise RuntimeError("the mlops-nb kernel zygote exited; see its error above")
    return int(answer)


def stop() -> None:
    """Stop this process's zygote (its kernels have been shut down)."""
    global _zygote
    with _lock:
        zygote, _zygote = _zygote, None
    if zygote is None:
        return
    if zygote.poll() is None:
        assert zygote.stdin is not None
        zygote.stdin.close()
        zygote.wait(10)
    for pipe in (zygote.stdin, zygote.stdout):  # a worker may start another zygote: no descriptor left open
        if pipe is not None:
            pipe.close()


class ZygoteProvisioner(LocalProvisioner):  # type: ignore[misc]
    """Launches this interpreter's ipykernel by forking the zygote; anything else as LocalProvisioner does."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        if not forkable(cmd):
            return await super().launch_kernel(cmd, **kwargs)
        cwd = str(kwargs.get("cwd") or os.getcwd())  # noqa: PTH109 - a string for the zygote
        pid = _fork(cmd[3:], dict(kwargs.get("env") or os.environ), cwd)
        self.process = _ForkedKernel(pid)
        self.pid = self.pgid = pid  # the child leads its own process group, as a launched kernel does
        self.cwd = cwd
        return self.connection_info


def _preload(names: str) -> None:  # pragma: no cover - runs in the zygote process
    """Import the notebook's libraries once (``PRELOAD_ENV``); one that fails to import is left to the
    kernel, which then fails the way a fresh interpreter would."""
    import importlib

    for name in filter(None, names.split(",")):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - not preloaded: the kernel imports it itself
            continue


def _serve() -> None:  # pragma: no cover - runs in the zygote process
    """The zygote: read requests, fork a kernel for each, answer its pid; reap the kernels that exit."""
    import random

    from ipykernel import kernelapp
    from ipykernel.debugger import Debugger  # noqa: F401  # debugpy: every kernel imports it as it starts
    from ipykernel.ipkernel import IPythonKernel  # noqa: F401

    def reap(*_: Any) -> None:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass

    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the sweep reaches the worker, not us
    _preload(os.environ.get(PRELOAD_ENV, ""))
    for line in sys.stdin.buffer:
        request = json.loads(line)
        pid = os.fork()
        if pid:
            sys.stdout.write(f"{pid}\n")
            sys.stdout.flush()
            continue
        # The kernel: a new process group, default signal handlers, the job's environment.
        os.setpgid(0, 0)
        for signum in (signal.SIGCHLD, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        random.seed()
        if "numpy.random" in sys.modules:  # each kernel draws its own numbers, as after a fresh import
            sys.modules["numpy.random"].seed()
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(2, 1)  # the zygote's stdout carries pids to the worker: the kernel writes to stderr
        # As jupyter_client's launcher tells its kernels (by JPY_PARENT_PID, read when kernelapp was imported):
        # exit when the parent, the zygote, is gone; and no console banner of a kernel started by hand.
        argv = [*request["argv"], f"--IPKernelApp.parent_handle={os.getppid()}"]
        sys.argv = [kernelapp.__file__, *argv]
        code = 0
        try:
            kernelapp.launch_new_instance(argv=argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - a kernel that crashes says so and exits
            import traceback

            traceback.print_exc()
            code = 1
        import atexit

        # The kernel's exit hooks (mlops-nb's journal among them). Private, as no public call runs them now:
        # the forked kernel must leave through os._exit (a normal exit would also tear down what it inherited
        # from the zygote, whose state is not its own), which skips them.
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    _serve()
