"""The transfer study (seeds 002 and 004): train once per source, evaluate every target, and
turn the cells into gains, efficiencies, relative transfer, drift and hypothesis verdicts.

spec -> plan (train and evaluate jobs) -> summarise -> analysis (drift, clusters,
hypotheses, similarity) -> report (figures, Markdown). May import the engine, `learn` and
the shared modules; never another study.
"""
