"""Watching a model once it serves: live performance, input drift, and the retraining they trigger.

A promoted model is judged again every day, on what it actually saw:

* :mod:`.performance`: its metrics per model version and day on the labels known so far (fraud
  labels arrive days after the payment, so each figure comes with its label coverage), or its
  errors against the actuals that arrived later (demand);
* :mod:`.drift`: how far each input (and the prediction) moved away from the champion's own
  training data: a population stability index per feature (the effect size the decision rests
  on), a two-sample test beside it, and Evidently's HTML report of the day;
* :mod:`.plots`: the figures the monitoring assets show in the UI (a metric per day per model
  version, PSI per feature);
* :mod:`.verdicts`: one sentence per check (ok, warn, failed or insufficient data) and, for a
  failure, the retraining it asks for;
* :mod:`.retraining`: the sensor that turns those requests into at most one retraining run per
  champion version and day.

Days with no traffic, no labels yet or no champion say "insufficient data": they never crash and
never alarm. Nothing heavy is imported here, nor at the top of the pure modules (numpy, pandas,
scipy, evidently and matplotlib are imported inside the functions): asset modules import them
while the code location loads.
"""
