"""The audit's checks by family: each module holds the rules of one concern as pure functions over plain
dicts (probes, spread, resources, shutdown, disruption, scaling, security, policy), on top of
:mod:`fields` (reading manifests that may hold anything) and :mod:`workload` (a workload as the rules see
it). :mod:`resilience_tests.audit.rules` maps rule ids to them and runs them."""
