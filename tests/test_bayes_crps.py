"""The Bayesian part of `ketameta crps --json`: every number with the scale and assumptions
it rests on (issue #15)."""

from __future__ import annotations

import json

from ketameta.crps import analyse_crps


def test_bayesian_entries_state_scale_range_and_method() -> None:
    report = json.loads(json.dumps(analyse_crps()))  # as --json writes it
    change = report["change"]["few_studies"]["bayesian"]
    responders = report["responders"]["few_studies"]["bayesian"]
    for entry in change + responders:
        for key in ("tau_prior", "mu_prior", "method", "interval_kind", "tau_scale"):
            assert entry[key], key
    # pain change: points on the 0-10 scale, whose change runs from -10 to 10; the
    # predictive interval of the main prior leaves it (-1.4 to 11.4 points)
    main = change[0]
    assert main["tau_scale"].startswith("points")
    assert main["outcome_range"] == [-10.0, 10.0]
    assert main["pred_outside_range"] is True
    assert main["pred_interval"][1] > 10.0
    # responders: tau on the logit scale, mu back-transformed to percent
    assert responders[0]["tau_scale"].startswith("logit")
    assert "percent" in responders[0]["tau_scale"]
    assert 0 < responders[0]["mu_median"] < 100
