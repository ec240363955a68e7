"""Suite texts several test modules write."""

TUNE_SUITE = """
name = "tune"
seed = 0
[dataset]
kind = "gtzan"
[protocol]
name = "stratified-kfold"
folds = 3
[tuning]
dev_fraction = 0.4
folds = 3
[[models]]
name = "logreg"
"""
"""A tunable suite on a tabular GTZAN folder: 3 folds, 40% of the tracks for tuning, logreg."""
