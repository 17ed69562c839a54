"""Does a timed threading wait return under libfaketime? No mlmon code involved.

Run: ``faketime -f '+1825d' python scripts/faketime-wait-probe.py``. With libfaketime 0.9.10
(Debian 12) it prints the ``time.sleep`` line, then hangs in ``Event.wait`` (CPython waits on a
semaphore until an absolute CLOCK_MONOTONIC deadline, which libfaketime moves but does not
intercept in ``sem_clockwait``). With ``FAKETIME_DONT_FAKE_MONOTONIC=1`` the wait returns but
``time.sleep`` fails with EINVAL. See docs/testing.md.
"""

import threading
import time

t0 = time.perf_counter()
time.sleep(0.3)  # a relative sleep: libfaketime passes it through
print(f"time.sleep(0.3) returned after {time.perf_counter() - t0:.2f} s", flush=True)
t0 = time.perf_counter()
threading.Event().wait(0.3)  # a semaphore wait to an absolute, faked monotonic deadline
print(f"Event.wait(0.3) returned after {time.perf_counter() - t0:.2f} s", flush=True)
