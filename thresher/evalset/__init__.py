"""Choosing evaluation items (``thresher evalset``): the few test items that rank systems like the full set.

From a table of *seen* systems' scores on every item, a method picks ``budget`` items and a weight for each; a
*new* system is then scored on those items only, and its full-set score is estimated (by default with the seen
systems as control variates), with an interval calibrated on the seen systems. ``--check`` measures all of it
against random selection over many seen/new splits of the systems, as tinyBenchmarks does.

- :mod:`thresher.evalset.table`: the scores table (long or wide, Parquet, CSV or JSONL), checked.
- :mod:`thresher.evalset.methods`: random, stratified, difficulty strata (the default), anchor points, IRT,
  active testing.
- :mod:`thresher.evalset.estimators`: weighted mean, seen-system control variates, p-IRT.
- :mod:`thresher.evalset.irt`: the 2PL model.
- :mod:`thresher.evalset.estimate`: conformal intervals for new systems.
- :mod:`thresher.evalset.check`: the split protocol, Kendall tau, MAE, coverage, verdicts against random.
- :mod:`thresher.evalset.leaderboard`: a real items x systems table built by training many small classifiers on a
  labelled set (the demo's, the tests' and the benchmark's).
"""
