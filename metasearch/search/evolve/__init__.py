"""GEPA-like reflective evolution (issue 13 item 3): work in progress, not registered.

Only the per-task Pareto frontier (:mod:`.frontier`) exists so far.
"""
