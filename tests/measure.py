"What the memory tests measure a call with."
import time, tracemalloc


def peak(fn):
    "`(result, peak bytes allocated while it ran, seconds)` of `fn()`."
    tracemalloc.start()
    try:
        start = time.perf_counter(); out = fn(); elapsed = time.perf_counter() - start
        return out, tracemalloc.get_traced_memory()[1], elapsed
    finally: tracemalloc.stop()
