"""Governance: rules that check runs, a quality score per run, and reports of both.

Pure like the readers: nothing here imports Aim. `etl.writers.governance` reads runs out of Aim
into `RunView`s and writes the `Validation` back; `etl.pipeline.validate` chains the two.
"""
