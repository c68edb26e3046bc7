"""Comparing runs: a verdict with statistics, per scorer and per item, honest about runs on
different dataset versions. Runs here are caller-driven so each score is exactly known."""

from __future__ import annotations

import subprocess
from typing import Any
from uuid import UUID

import numpy as np
import pytest
from cli_runner import evalledger
from conftest import Service

from evalledger import ApiError, Client


def items_of(client: Client, dataset_id: Any, version: int | None = None) -> list[str]:
    return [str(item.id) for item in client.iter_items(dataset_id, version=version)]


def scored_run(client: Client, dataset_id: Any, scores: dict[str, dict[str, float | None]], *,
               version: int | None = None, latencies: dict[str, float] | None = None,
               repetitions: int = 1, finalize: bool = True) -> UUID:
    """A caller-driven run with the given per-item scores ({itemId: {scorerId: score}})."""
    run = client.create_run(dataset_id, version=version, repetitions=repetitions)
    results = [
        {"itemId": item_id, "repetition": rep, "output": "x", "latencyMs": (latencies or {}).get(item_id),
         "scores": [{"scorerId": s, "score": v} for s, v in per_item.items()]}
        for item_id, per_item in scores.items()
        for rep in range(repetitions)
    ]
    for start in range(0, len(results), 500):
        client.submit_results(run.id, results[start:start + 500])
    if finalize:
        client.finalize_run(run.id)
    return run.id


@pytest.fixture
def hundred(service: Service) -> tuple[Client, Any, list[str]]:
    client = service.client
    dataset = client.create_dataset("hundred")
    client.add_items(dataset.id, [{"input": i, "metadata": {"split": "test" if i % 5 == 0 else "train"}}
                                  for i in range(100)])
    return client, dataset.id, items_of(client, dataset.id)


def test_thirty_items_worse_by_point_four_is_a_significant_regression(hundred: Any) -> None:
    client, dataset_id, ids = hundred
    baseline = scored_run(client, dataset_id, {i: {"quality": 1.0} for i in ids})
    candidate = scored_run(client, dataset_id, {i: {"quality": 0.6 if k < 30 else 1.0} for k, i in enumerate(ids)})
    result = client.compare(baseline, candidate)
    block = result.scorers["quality"]
    assert block.verdict == "regressed" and result.has_regression
    assert block.p_value is not None and block.p_value < 0.01
    assert (block.regressed, block.improved, block.unchanged) == (30, 0, 70)
    assert block.delta == pytest.approx(-0.12) and block.mean_a == 1.0 and block.mean_b == pytest.approx(0.88)
    assert block.confidence_interval["low"] < -0.12 < block.confidence_interval["high"] < 0
    assert result.paired_items == 100 and result.warnings == []
    assert [item.status for item in result.items[:30]] == ["regressed"] * 30


def test_small_random_noise_is_no_significant_change(hundred: Any) -> None:
    client, dataset_id, ids = hundred
    rng = np.random.default_rng(7)
    base = rng.uniform(0.3, 0.7, size=100)
    noisy = np.clip(base + rng.normal(0, 0.01, size=100), 0, 1)
    baseline = scored_run(client, dataset_id, {i: {"q": float(v)} for i, v in zip(ids, base, strict=True)})
    candidate = scored_run(client, dataset_id, {i: {"q": float(v)} for i, v in zip(ids, noisy, strict=True)})
    block = client.compare(baseline, candidate).scorers["q"]
    assert block.verdict == "no-significant-change" and block.p_value > 0.05


def test_lower_is_better_flips_the_direction_and_thresholds_count(hundred: Any) -> None:
    client, dataset_id, ids = hundred
    baseline = scored_run(client, dataset_id, {i: {"cost": 0.5} for i in ids})
    cheaper = scored_run(client, dataset_id, {i: {"cost": 0.3 if k < 50 else 0.5} for k, i in enumerate(ids)})
    lower = {"cost": {"value": 0.0, "direction": "lower-is-better"}}
    assert client.compare(baseline, cheaper, thresholds=lower).scorers["cost"].verdict == "improved"
    assert client.compare(baseline, cheaper).scorers["cost"].verdict == "regressed"
    assert client.compare(cheaper, baseline, thresholds=lower).scorers["cost"].verdict == "regressed"
    big_enough = {"cost": {"value": 0.2, "direction": "lower-is-better"}}
    assert client.compare(cheaper, baseline, thresholds=big_enough).scorers["cost"].verdict == "no-significant-change"


def test_runs_on_different_versions_pair_only_common_items_and_flag_changed_content(service: Service) -> None:
    client = service.client
    dataset = client.create_dataset("versions")
    client.add_items(dataset.id, [{"input": {"q": i}} for i in range(10)])      # v1
    ids = items_of(client, dataset.id)
    client.add_item(dataset.id, input={"q": "filler"})                          # v2
    client.delete_item(dataset.id, items_of(client, dataset.id)[-1])            # v3
    v3 = items_of(client, dataset.id, version=3)
    client.update_item(dataset.id, ids[0], input={"q": "changed"})              # v4
    client.delete_item(dataset.id, ids[1])
    added = client.add_item(dataset.id, input={"q": "new"}).item                # v6
    assert client.get_dataset(dataset.id).version == 6
    v5 = items_of(client, dataset.id, version=5)
    run3 = scored_run(client, dataset.id, {i: {"s": 1.0} for i in v3}, version=3)
    run5 = scored_run(client, dataset.id, {i: {"s": 1.0} for i in v5}, version=5)
    result = client.compare(run3, run5, items_per_page=100)
    assert {w["code"] for w in result.warnings} == {"different-dataset-versions"}
    by_id = {str(item.item_id): item for item in result.items}  # typed: models.ComparisonItem
    assert by_id[ids[1]].status == "onlyInA"
    assert result.paired_items == 9 and result.scorers["s"].paired_items == 9
    assert by_id[ids[0]].content_changed is True
    change = by_id[ids[0]].content_change
    assert change["change"] == "changed"
    assert [(f["field"], f["before"], f["after"]) for f in change["fields"]] == [("input.q", 0, "changed")]
    assert by_id[ids[2]].content_changed is False
    run6 = scored_run(client, dataset.id, {i: {"s": 1.0} for i in items_of(client, dataset.id)})
    later = client.compare(run5, run6, items_per_page=100)
    assert {str(i.item_id): i.status for i in later.items}[str(added.id)] == "onlyInB"

def test_latency_percentiles_match_numpy(hundred: Any) -> None:
    client, dataset_id, ids = hundred
    latencies = {i: float(v) for i, v in zip(ids, np.random.default_rng(3).gamma(2.0, 40.0, 100), strict=True)}
    run_id = scored_run(client, dataset_id, {i: {"s": 1.0} for i in ids}, latencies=latencies)
    stats = client.analytics(run_id).latency_ms
    values = np.array(list(latencies.values()))
    assert stats.p50 == pytest.approx(np.percentile(values, 50))
    assert stats.p95 == pytest.approx(np.percentile(values, 95))
    assert stats.p99 == pytest.approx(np.percentile(values, 99))
    assert stats.mean == pytest.approx(values.mean()) and stats.max == pytest.approx(values.max())


def test_analytics_per_scorer_per_group_and_across_repetitions(hundred: Any) -> None:
    client, dataset_id, ids = hundred
    scores = {i: {"s": k / 99, "broken": None} for k, i in enumerate(ids)}
    run_id = scored_run(client, dataset_id, scores)
    analytics = client.analytics(run_id, threshold=0.5, group_by="metadata.split")
    values = np.array([k / 99 for k in range(100)])
    s = analytics.scorers["s"]
    assert s.count == 100 and s.mean == pytest.approx(values.mean()) and s.median == pytest.approx(np.median(values))
    assert s.std == pytest.approx(values.std(ddof=1)) and (s.min, s.max) == (0.0, 1.0)
    assert s.pass_rate == pytest.approx((values >= 0.5).mean())
    assert analytics.scorers["broken"].count == 0 and analytics.success_rate == 1.0
    assert client.get_run(run_id).score_summary["s"]["mean"] == pytest.approx(values.mean())
    assert set(analytics.groups) == {"test", "train"}
    assert analytics.groups["test"]["scorers"]["s"]["count"] == 20

    repeated = scored_run(client, dataset_id, {i: {"s": 0.5} for i in ids[:10]}, repetitions=3)
    variability = client.analytics(repeated).repetitions
    assert variability["s"]["meanVariance"] == 0.0 and len(variability["s"]["mostVariableItems"]) == 10


def test_several_candidates_against_one_baseline(hundred: Any) -> None:
    client, dataset_id, ids = hundred
    baseline = scored_run(client, dataset_id, {i: {"s": 1.0} for i in ids})
    same = scored_run(client, dataset_id, {i: {"s": 1.0} for i in ids})
    worse = scored_run(client, dataset_id, {i: {"s": 0.0 if k < 40 else 1.0} for k, i in enumerate(ids)})
    many = client.compare_many(baseline, [same, worse])
    assert [c.scorers["s"].verdict for c in many.comparisons] == ["no-significant-change", "regressed"]
    assert many.has_regression


def test_bad_comparisons_get_clear_answers(hundred: Any) -> None:
    client, dataset_id, ids = hundred
    done = scored_run(client, dataset_id, {i: {"s": 1.0} for i in ids})
    running = scored_run(client, dataset_id, {i: {"s": 1.0} for i in ids[:5]}, finalize=False)
    for baseline, candidate, status in (
        (done, "5d1f0c8e-0000-4000-8000-000000000000", 404),
        (done, done, 422),
        (done, running, 409),
    ):
        with pytest.raises(ApiError) as refused:
            client.compare(baseline, candidate)
        assert refused.value.status == status
    partial = client.compare(done, running, allow_partial=True)
    assert partial.partial and partial.paired_items == 5 and partial.only_in_a == 95
    empty = client.create_run(dataset_id)
    client.finalize_run(empty.id)
    nothing = client.compare(done, empty.id)
    assert {"empty-run", "no-overlapping-items"} <= {w["code"] for w in nothing.warnings}
    assert nothing.scorers["s"].paired_items == 0 and not nothing.has_regression


def test_the_compare_command_gates_on_regressions(service: Service, hundred: Any) -> None:
    client, dataset_id, ids = hundred
    baseline = scored_run(client, dataset_id, {i: {"s": 1.0} for i in ids})
    worse = scored_run(client, dataset_id, {i: {"s": 0.0 if k < 30 else 1.0} for k, i in enumerate(ids)})

    def compare(a: Any, b: Any) -> subprocess.CompletedProcess[str]:
        return evalledger("compare", str(a), str(b), url=service.url)

    gate = compare(baseline, worse)
    assert gate.returncode == 1 and "regressed" in gate.stderr and "regression found" in gate.stderr
    assert compare(baseline, baseline).returncode == 2
    assert compare(worse, baseline).returncode == 0
