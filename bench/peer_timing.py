"""Timing shared by the PyTorch peer scripts (train_peer.py, method_peer.py): each step timed on
its own after untimed warm-up steps, reported in apps/bench_train's words so the wrappers parse
both programs' lines alike."""
import resource
import time


def time_steps(step, warmup, steps):
    """Runs step() warmup times, then steps times; returns each timed step's seconds."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def throughput(batch, times):
    """'<median> images/s median step (<s> s), <mean> mean, peak RSS <MiB> MiB'."""
    median = sorted(times)[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (f"{batch / median:8.1f} images/s median step ({median:.3f} s), "
            f"{batch * len(times) / sum(times):8.1f} mean, peak RSS {rss:.0f} MiB")
