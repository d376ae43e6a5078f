"""The environment every job's kernel (and the zygote it may fork from) starts with, unless the user set it.

Its own module, below both ``kernels.py`` (which starts kernels) and ``zygote.py`` (which forks them), so that
neither imports the other for it.
"""

from __future__ import annotations

# debugpy, which every kernel imports, warns about Python's frozen modules on each start (its documented
# switch; the kernels' debugger is not used by jobs).
KERNEL_ENV = {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}
