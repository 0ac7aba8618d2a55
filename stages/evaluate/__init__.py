"""Evaluation of ranked lists: ranking metrics, beyond-accuracy metrics and model comparison.

ranking.py  precision, recall, NDCG, MAP, MRR, hit rate per (model, user), and their variants
beyond.py   coverage, diversity, novelty, popularity, and the per-model summary
compare.py  paired significance tests of every model against a baseline and the best model
results.py  metrics.json: all of the above (and views, segments, variants) for one run
"""
