"""The papermill engine ``mlops_nb``: papermill's nbclient engine, with the execution recorded as a job run.

``papermill --engine mlops_nb in.ipynb out.ipynb -p alpha 0.5`` gives plain papermill users the same tracked
job as ``mlops-nb run``, which uses this engine too and passes its options as ``mlops_nb_job``. papermill
imports every registered engine when it loads: import papermill, never this module directly (that import
would be circular), and keep this module free of anything heavy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args


class MlopsNbEngine(NBClientEngine):
    """Executes like papermill's default engine; records the job (see ``mlops_nb.jobs.job``)."""

    @classmethod
    def execute_notebook(cls, nb: Any, kernel_name: str, output_path: str | None = None, **kwargs: Any) -> Any:
        from mlops_nb.jobs.job import OPTIONS_KWARG, Job, JobOptions
        from mlops_nb.tracking.store import quiet_console

        quiet_console()  # as the CLI: plain `papermill --engine mlops_nb` showed alembic's INFO lines
        given: JobOptions | None = kwargs.pop(OPTIONS_KWARG, None)
        options = given or JobOptions()
        job = Job(kwargs.get("input_path"), nb, options)
        _skip(nb, options.skip_cells)
        try:
            env = job.kernel_env()
            nb = super().execute_notebook(
                nb,
                kernel_name,
                # Without a path papermill's manager saves nothing while the cells run; papermill still writes
                # the output at the end, or when a cell raised.
                output_path=output_path if options.save_every_cell else None,
                kernel_env=env,
                warm_kernels=options.warm_kernels,
                prestart=options.prestart,
                **kwargs,
            )
        except BaseException as e:
            if output_path and not options.save_every_cell:  # a dead kernel, a timeout: papermill writes nothing
                from papermill.iorw import write_ipynb

                try:
                    write_ipynb(nb, output_path)
                except Exception:  # noqa: BLE001 - the job's record (with the notebook) matters more than the file
                    logger.warning("mlops-nb could not write the executed notebook to %s", output_path)
            options.result = job.finish(nb, e, output_path)
            if given is None:
                _say(options.result)
            raise
        options.result = job.finish(nb, None, output_path)
        if given is None:  # plain papermill: `mlops-nb run` prints the run id itself
            _say(options.result)
        nb.metadata["mlops_nb"] = {"run_id": options.result.run_id, "experiment": options.result.experiment}
        return nb

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: Any,
        kernel_name: str,
        log_output: bool = False,
        stdout_file: Any = None,
        stderr_file: Any = None,
        start_timeout: float = 60,
        execution_timeout: float | None = None,
        kernel_env: dict[str, str] | None = None,
        warm_kernels: bool = False,
        prestart: bool = False,
        **kwargs: Any,
    ) -> Any:
        # papermill's engine hook (engines override execute_managed_notebook). NBClientEngine's own takes no
        # client class nor kernel environment, so its argument handling is repeated here, plus the kernel's
        # environment and (warm_kernels) a kernel started ahead.
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        from mlops_nb.jobs import kernels

        if not warm_kernels:
            if "config" not in final_kwargs:  # nbclient passes its config to the kernel manager it creates
                from traitlets.config import Config

                final_kwargs["config"] = Config({"KernelManager": kernels.encryption()})
            final_kwargs.setdefault("kernel_manager_class", kernels.manager_class())
            return _JobClient(nb_man, **final_kwargs).execute(env=kernel_env)
        from pathlib import Path

        env, cwd = kernel_env or {}, str(Path.cwd())
        km = kernels.take(kernel_name)
        client = _WarmClient(nb_man, km=km or kernels.start(kernel_name, env, cwd), **final_kwargs)
        client.setup = kernels.setup_code(env, km.started_env, cwd) if km is not None else ""
        client.prestart = prestart
        try:
            return client.execute()
        finally:
            if client.kc is not None:
                client.kc.stop_channels()
            kernels.stop_later(client.km)  # in the background: the next job need not wait for it


SKIP_TAG = "skip-execution"  # nbclient's NotebookClient.skip_cells_with_tag


def _skip(nb: Any, positions: tuple[int, ...]) -> None:
    """Tag the cells at ``positions`` (counted among the cells that are not papermill's injected-parameters
    cell, which papermill adds or replaces) so that nbclient skips them (run --stage/--until)."""
    cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for position in positions:
        tags = cells[position].setdefault("metadata", {}).setdefault("tags", [])
        if SKIP_TAG not in tags:
            tags.append(SKIP_TAG)


def _say(result: Any) -> None:
    """The job's run id on stderr, where papermill logs (its stdout may be the output notebook: ``-``)."""
    import sys

    where = f"run {result.run_id}" if result.run_id else f"run (key {result.key}; its records wait in the journal)"
    print(f"mlops-nb: job {where} in experiment {result.experiment!r}: {result.outcome}", file=sys.stderr)


def _kill(km: Any) -> None:
    """Kill a kernel's process without the kernel manager's (async) shutdown.

    ``provisioner.kill()`` is the public call, but a coroutine, and this runs inside nbclient's own event
    loop; ``LocalProvisioner.process`` (a public attribute) is the Popen it would kill."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is not None and process.poll() is None:
        process.kill()
        process.wait(10)


class _JobClient(PapermillNotebookClient):
    """papermill's client; when the execution stops on Ctrl-C, SIGTERM or a timeout, the kernel is
    interrupted and waited for before it is shut down. jupyter_client interrupts a kernel and at once asks it
    to shut down: the interrupted cell's reply then goes to a socket the shutdown has closed, and the kernel
    prints a ``ZMQError: Socket operation on non-socket`` traceback. A kernel that starts when Ctrl-C
    arrives is stopped too."""

    @contextmanager
    def setup_kernel(self, **kwargs: Any) -> Iterator[None]:
        # nbclient stops its kernel when the notebook is done or raised, but not when a Ctrl-C arrives while
        # the kernel starts (before its try): that kernel would outlive the job, holding our stdout open.
        try:
            if self.km is None:
                self.km = self.create_kernel_manager()
            if not self.km.has_kernel:
                self.start_new_kernel(**{k: v for k, v in kwargs.items() if k != "cleanup_kc"})
            if self.kc is None:
                self.start_new_kernel_client()
        except BaseException:
            if self.owns_km and self.km is not None:
                # It has run nothing: killed at once, before the clean-up, which runs on the event loop the
                # Ctrl-C broke into, where the interrupted start may still be waiting for the kernel.
                _kill(self.km)
                self.shutdown_kernel = "immediate"
                try:
                    self._cleanup_kernel()  # its connection file and channels
                except Exception as e:  # noqa: BLE001 - that loop may be unusable
                    logger.debug("mlops-nb: kernel clean-up after an interrupted start failed: %r", e)
            raise
        with super().setup_kernel(**kwargs):
            yield

    def papermill_execute_cells(self) -> None:
        try:
            super().papermill_execute_cells()
        except BaseException:  # Ctrl-C, SIGTERM, a cell past its timeout: the kernel may still be busy
            try:
                run_sync(self._async_settle)()
            except Exception as e:  # noqa: BLE001 - the shutdown that follows copes with any kernel
                logger.debug("mlops-nb: the interrupted kernel did not settle: %r", e)
            raise

    async def _async_settle(self, timeout: float = 5.0) -> None:
        """Interrupt the kernel and wait (up to ``timeout``) until it has answered the interrupted cell."""
        import asyncio
        import queue
        import time

        from jupyter_client.utils import ensure_async

        # The Ctrl-C left nbclient's tasks for the interrupted cell pending in this loop; they would read
        # (and drop) the replies we wait for.
        current = asyncio.current_task()
        stale = [task for task in asyncio.all_tasks() if task is not current]
        for task in stale:
            task.cancel()
        await asyncio.gather(*stale, return_exceptions=True)
        if self.km is None or self.kc is None or not await ensure_async(self.km.is_alive()):
            return
        await ensure_async(self.km.interrupt_kernel())
        # Answered after the interrupted cell's reply: the kernel handles its shell messages in order.
        msg_id = await ensure_async(self.kc.kernel_info())
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except queue.Empty:
                return
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return


class _WarmClient(_JobClient):
    """Runs in a kernel the engine started (a spare one: ``setup`` gives it the job's settings, silently), and
    starts the next job's spare kernel once this one is ready, so that they do not boot at the same time."""

    setup = ""
    prestart = False

    def papermill_execute_cells(self) -> None:
        from mlops_nb.jobs import kernels

        if self.setup:
            reply = self.wait_for_reply(self.kc.execute(self.setup, silent=True, store_history=False))
            if reply is None or reply["content"]["status"] != "ok":
                raise RuntimeError(f"mlops-nb could not prepare the kernel for the job: {reply and reply['content']}")
        if self.prestart:
            kernels.prestart(self.km.kernel_name)
        super().papermill_execute_cells()
