"""A `RunSpec` seen as rules will later see the run in Aim, so checks on import and `validate`
afterwards agree: the same params (`hparams`, `meta`, `etl`), the same experiment and name, and
series summaries computed the way Aim's tracker keeps them."""

from __future__ import annotations

from etl.governance.model import RunView, TraceSummary, context_key
from etl.mapper import RunSpec

# Aim puts a run created without an experiment into this one.
AIM_DEFAULT_EXPERIMENT = "default"


def view_of_spec(spec: RunSpec) -> RunView:
    params = {"hparams": spec.hparams, "etl": {**spec.provenance, "complete": True}}
    if spec.meta:
        params["meta"] = spec.meta
    series = {(s.name, context_key(s.context)): s for s in spec.series}
    return RunView(
        key=spec.run_hash,
        experiment=spec.experiment or AIM_DEFAULT_EXPERIMENT,
        name=spec.name,
        params=params,
        traces={key: TraceSummary.of(s.steps, s.values) for key, s in series.items()},
        series=lambda name, context: list(series[(name, context)].values),
    )
