"""Batch experiments: plans, sweeps, executors (local pool, Ray), manifest, resume, report.

>>> from musegen.batch import load_plan, run_batch
>>> plan = load_plan("samples/plan.toml")
>>> summary = run_batch(plan, "runs/exp1", workers=2)
>>> summary.exit_code
0

Modules: :mod:`~musegen.batch.plan` (TOML -> jobs with stable ids),
:mod:`~musegen.batch.params` (what a job may set), :mod:`~musegen.batch.job`
(one job in a worker), :mod:`~musegen.batch.local` and
:mod:`~musegen.batch.ray_exec` (executors), :mod:`~musegen.batch.manifest`,
:mod:`~musegen.batch.report` and :mod:`~musegen.batch.runner`.  Importing
this package is cheap; numpy and the engines load inside the jobs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_plan", "parse_plan", "run_batch"]


def __getattr__(name: str) -> Any:
    if name in ("load_plan", "parse_plan"):
        from musegen.batch import plan

        return getattr(plan, name)
    if name == "run_batch":
        from musegen.batch.runner import run_batch

        return run_batch
    raise AttributeError(f"module 'musegen.batch' has no attribute {name!r}")
