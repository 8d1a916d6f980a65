"""The cyclic garbage collector, tuned for serving.

Reference counting frees almost everything a request or a node makes; the cyclic collector is
for the rest (exceptions and their frames, a cancelled task's). By default it runs a young
collection every 700 allocations, and every tenth of those scans the middle generation and,
now and then, every object the process holds: the modules, the app, the parsed workflows. A
1,000-node run made some 14 collections a run that took as long as a tenth of its nodes.
Serving freezes what start-up made (it is never garbage: a full collection no longer scans it)
and collects the young generation every 20,000 allocations.
"""

import gc

YOUNG_ALLOCATIONS = 20_000


def tune_for_serving() -> None:
    """Call once the app is made, before serving."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_ALLOCATIONS, middle, old)
