"""`evalledger review set|show|queue` and the client's review methods (issue 18, item 4)."""

from __future__ import annotations

import json

import pytest
from cli_runner import evalledger
from conftest import acting_for, Service
from test_reviews import finished_run

from evalledger.client import ApiError


def test_the_client_reviews_and_reads_back(service: Service) -> None:
    client = service.client
    run_id, items = finished_run(service, ["Lyon", "Rome"], ["Paris", "Rome"], [0.0, 1.0])
    detail = client.review_result(run_id, items[0], verdict="pass", scores={"exact-match": 1.0}, flagged=True,
                                  reason="synonym")
    assert detail.review is not None and detail.review["verdict"] == "pass"
    assert [(h.source, h.score) for h in detail.score_history] == [("automatic", 0.0), ("review", 1.0)]
    assert detail.output_diff.kind == "text"
    assert client.get_result(run_id, items[0]).reviews[0].reason == "synonym"
    assert [str(r.item_id) for r in client.review_queue(run_id).results] == [items[0]]
    assert client.analytics(run_id).scorers["exact-match"].mean == 1.0
    with pytest.raises(ApiError) as refused:
        client.review_result(run_id, items[1], scores={"nope": 0.5})
    assert refused.value.status == 422
    assert client.get_result(run_id, items[1]).reviews == []


def test_the_review_commands(service: Service) -> None:
    run_id, items = finished_run(service, ["The capital is Lyon.", "Rome"], ["The capital is Paris.", "Rome"],
                                 [0.0, 1.0])
    done = evalledger("--actor", "dora", "review", "set", run_id, items[0], "--verdict", "pass", "--score",
                      "exact-match=0.75", "--criterion", "tone=0.5", "--comment", "close enough", "--flag",
                      url=service.url)
    assert done.returncode == 0, done.stderr
    shown = evalledger("review", "show", run_id, items[0], "--json", url=service.url)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["review"]["actor"] == acting_for("dora") and detail["review"]["comment"] == "close enough"
    assert [(h["scorerId"], h["score"], h["actor"]) for h in detail["scoreHistory"]] == [
        ("exact-match", 0.0, "caller"), ("exact-match", 0.75, acting_for("dora")), ("tone", 0.5, acting_for("dora"))]
    table = evalledger("review", "show", run_id, items[0], url=service.url)
    assert table.returncode == 0 and "Paris." in table.stderr + table.stdout and "Lyon." in table.stderr + table.stdout
    queue = evalledger("review", "queue", run_id, url=service.url)
    assert queue.returncode == 0 and items[0] in queue.stdout and items[1] not in queue.stdout
    bad = evalledger("review", "set", run_id, items[1], "--score", "exact-match=1.5", url=service.url)
    assert bad.returncode == 1 and "Review not recorded" in bad.stderr
    unknown = evalledger("review", "set", run_id, items[1], "--score", "nope=0.5", url=service.url)
    assert unknown.returncode == 1 and "nope" in unknown.stderr
    assert service.client.get_result(run_id, items[1]).reviews == []
