"""Worked examples that use bfly as a user would: ``digits`` trains a small CNN with butterfly
pointwise layers on scikit-learn's digits and quantizes it for the engine (``bfly train-demo``,
``bfly quantize``)."""
