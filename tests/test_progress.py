"""The CLI's progress bar: an ETA from measured step times, none before it means something."""

from __future__ import annotations

from musegen.cli.progress import ProgressBar, StepRate, format_eta


class Clock:
    """A hand-driven clock: the test says how long each step took, nothing depends on real time."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_eta_of_a_musicgen_job_ignores_the_warm_up():
    """As `generate --engine musicgen` reports it: a start mark, a slow first step (model load and
    warm-up, 20 s), then 50 steps of 0.2 s for the engine's quarter of the bar."""
    clock = Clock()
    bar = ProgressBar("generating", enabled=True, clock=clock)
    shown = []
    bar(0, 4, "musicgen: generating")
    shown.append(bar.eta_text)
    clock.now += 20.0
    for step in range(1, 51):
        bar(step / 50, 4, f"musicgen: {step}/50 frames")
        shown.append(bar.eta_text)
        clock.now += 0.2
    bar.close()
    assert shown[:3] == ["", "", ""]  # nothing is known after the warm-up step and the one after it
    # from then on: what is left at 0.2 s per fiftieth, never minutes or hours
    (early,) = [t for t in shown[3:4]]
    assert early.startswith("ETA 00:00:"), shown
    assert all(t.startswith("ETA 00:00:") for t in shown[3:]), shown
    left = (4 - 20 / 50) * 50 * 0.2  # seconds at the measured rate after step 20
    assert shown[20] == format_eta(left)


def test_step_rate_follows_the_recent_steps():
    rate = StepRate(warmup=2, window=4)
    t = 0.0
    for done, dt in enumerate([30.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5], start=1):
        t += dt
        rate.update(done, t)
    assert rate.eta(19) == 5.0  # 10 left at the last four steps' 0.5 s


def test_no_eta_without_progress():
    rate = StepRate()
    for t in range(5):
        rate.update(1, float(t))
    assert rate.eta(10) is None
    assert format_eta(None) == "" and format_eta(3725) == "ETA 01:02:05"
