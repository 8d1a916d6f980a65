"""The event loop gets the GIL back soon when a worker thread computes.

FlowTrux sends Python work that may take long (validating a large workflow, measuring a large
output, encoding events) to worker threads, so that it never holds up the event loop for long.
But a thread that computes keeps the GIL until CPython's switch interval (5 ms by default) asks
it to let go, and the event loop gives the GIL up at every poll for I/O: with such a thread
running, each turn of the loop waited up to 5 ms, and a Stop that needs a few hundred turns
(read the request, cancel, store the end, send the events) took 0.7 to 4.7 s. With 0.5 ms it
took 0.08 to 0.2 s (tests/e2e/test_http_faults.py), for a little more switching.
"""

import sys

SWITCH_INTERVAL_S = 0.0005


def hand_back_soon() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
