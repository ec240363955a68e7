"""``bench tune MODEL --trials N``: Optuna studies over a registered model's search space.

- **Objective** (:mod:`~bench.tuning.objective`): the mean of a metric over the inner folds of
  the suite's development split (:class:`bench.data.splits.DevSplit`), so tuning never sees a
  track a leaderboard tests on. Torch models report every epoch to the pruner, others every
  fold. Folds are scored by :func:`bench.evaluate.score_fold`, as ``bench run`` scores them.
- **Storage** (:mod:`~bench.tuning.storage`): a journal file, SQLite or PostgreSQL, and one
  study-wide lock (a file lock beside a file, a PostgreSQL advisory lock).
- **Exactly N trials** (:mod:`~bench.tuning.study`, :mod:`~bench.tuning.workers`): ``--trials
  N`` is the number of complete-or-pruned trials the study ends with, however many workers,
  machines and re-runs share it. Workers claim a trial under the lock, so two never both take
  the last slot.
- **Crashes**: a trial that raises is recorded FAILED and the study goes on. A worker killed
  mid-trial leaves a RUNNING trial: it is failed and re-queued at once when its process is gone
  from this host, or by heartbeat (PostgreSQL) when it ran elsewhere.
- **MLflow** (:mod:`~bench.tuning.session`): whoever coordinates copies finished trials into
  nested runs under one parent run per study, keyed by trial number, so each is logged once
  (a run a killed command left half-written is replaced on the next sync).
  The best parameters go to ``experiments/tuned/<suite>.toml`` (:mod:`bench.tuned`).

Entry points: :func:`bench.tuning.session.plan` turns :class:`~bench.tuning.options.TuneOptions`
into a checked request on loaded data, :func:`bench.tuning.session.tune` runs it. This file
imports nothing, so that ``bench --help`` can read :mod:`~bench.tuning.options` instantly. Only
this package imports Optuna (an import-linter contract in pyproject.toml).
"""
