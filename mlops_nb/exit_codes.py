"""The exit codes of every ``mlops-nb`` command, declared once (docs/index.md lists them)."""

OK = 0
FAILED = 1  # a notebook, or a CI check, failed
USAGE = 2  # bad input: nothing was done; the message names the fix (click's own code for bad usage)
REFUSED = 3  # a requirement or promotion gate refused, a reproduction differs, drift (--fail-on-drift), graph problems
DIFFERS = REFUSED
DRIFT = REFUSED
KERNEL = 4  # a job's kernel died or ran past its timeout
STORE = 5  # the records could not reach MLflow (they stay in the journal)
INTERRUPTED = 130  # 128 + SIGINT, as shells report an interrupted command
