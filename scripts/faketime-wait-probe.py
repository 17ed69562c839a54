"""Does a timed threading wait return under libfaketime? No mlmon code involved.

    faketime -f '+1825d' python scripts/faketime-wait-probe.py   # 0.9.10: hangs after "sleep"
    FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f '+1825d' python ...  # both return
"""

import threading
import time

t0 = time.perf_counter()
time.sleep(0.3)  # a relative sleep: libfaketime passes it through
print(f"time.sleep(0.3) returned after {time.perf_counter() - t0:.2f} s", flush=True)
t0 = time.perf_counter()
threading.Event().wait(0.3)  # a semaphore wait to an absolute, faked monotonic deadline
print(f"Event.wait(0.3) returned after {time.perf_counter() - t0:.2f} s", flush=True)
