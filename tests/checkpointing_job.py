"""A stand-in job for the requeue tests: it follows `flooding train`'s protocol in seconds.

    python checkpointing_job.py STATE OUT STEP_SECONDS EXTRA_STEPS

The first run counts steps until the scheduler's signal (SIGUSR2 before a time limit, or
SIGTERM), saves its step to STATE and exits non-zero; a rerun resumes from STATE, does
EXTRA_STEPS more and writes "resumed from step N" to OUT.
"""

import pathlib
import signal
import sys
import time

state, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
step_seconds, extra_steps = float(sys.argv[3]), int(sys.argv[4])
start = int(state.read_text()) if state.exists() else 0
stop: list[int] = []
for signum in (signal.SIGUSR2, signal.SIGTERM):
    signal.signal(signum, lambda received, frame: stop.append(received))
step = start
while start == 0 or step < start + extra_steps:
    if stop:
        state.write_text(str(step))
        sys.exit(1)
    time.sleep(step_seconds)
    step += 1
out.write_text(f"resumed from step {start}\n")
