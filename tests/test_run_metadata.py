"""Run metadata for reproducibility (issue 17, item 5): the model, the prompt (template and
version), the code version (the git commit of evaluate()'s caller) and free-form tags are
kept with the run, and runs are listed and filtered by them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_runner import evalledger
from conftest import Service, running_service, with_settings
from llm_server import LLMServer

from evalledger import Client, evaluate
from evalledger.domain.errors import InvalidRequestError
from evalledger.domain.runs import prompt_version
from evalledger.settings import Settings


def dataset_with_items(client: Client, name: str = "meta") -> str:
    dataset = client.create_dataset(name)
    client.add_items(dataset.id, [{"input": n, "expectedOutput": n} for n in range(3)])
    return str(dataset.id)


def ids(runs: Any) -> set[str]:
    return {str(run.id) for run in runs}


def test_runs_keep_model_prompt_code_and_tags_and_are_filtered_by_them(service: Service) -> None:
    client = service.client
    dataset_id = dataset_with_items(client)
    a = client.create_run(dataset_id, model="gpt-small", prompt="Answer: {{input}}", code_version="abc123def",
                          tags=["nightly", "main"], metadata={"owner": "qa"})
    assert a.metadata == {"owner": "qa", "model": "gpt-small", "codeVersion": "abc123def", "tags": ["nightly", "main"],
                          "prompt": {"template": "Answer: {{input}}", "version": prompt_version("Answer: {{input}}")}}
    b = client.create_run(dataset_id, model="gpt-large", prompt={"template": "Q: {{input}}", "version": "v7"},
                          code_version="fed987", tags=["main"])
    c = client.create_run(dataset_id, metadata={"tag": "nightly"})  # the older single-tag form
    other = client.create_run(dataset_with_items(client, "other"), tags=["main"], model="gpt-small")
    assert a.metadata["prompt"]["version"].startswith("sha256:") and b.metadata["prompt"]["version"] == "v7"

    assert ids(client.list_runs(dataset_id, per_page=100).runs) == ids([a, b, c])
    assert ids(client.list_runs(dataset_id, tags=["main"]).runs) == ids([a, b])
    assert ids(client.list_runs(dataset_id, tags=["nightly"]).runs) == ids([a, c])
    assert ids(client.list_runs(dataset_id, tags=["nightly", "main"]).runs) == ids([a])
    assert ids(client.list_runs(dataset_id, model="gpt-small").runs) == ids([a])
    assert ids(client.list_runs(dataset_id, code_version="fed").runs) == ids([b])  # a prefix: a short commit
    assert ids(client.list_runs(dataset_id, prompt_version="v7").runs) == ids([b])
    assert ids(client.list_runs(dataset_id, status="pending", tags=["main"]).runs) == ids([a, b])
    listing = client.list_runs(dataset_id, tags=["nope"])
    assert listing.runs == [] and listing.pagination.total == 0
    assert ids(client.iter_runs(dataset_id, per_page=1, tags=["main"])) == ids([a, b])
    assert str(other.id) not in ids(client.list_runs(dataset_id, tags=["main"]).runs)

    # Bad input: a clear 4xx, and no run is made.
    for bad in ({"model": ""}, {"tags": ["x" * 101]}, {"tags": "main"}, {"prompt": {"version": "v1"}},
                {"codeVersion": 7}, {"model": "m", "metadata": {"model": "n"}}):
        answer = client.http.post(f"/api/datasets/{dataset_id}/runs", json=bad)
        assert answer.status_code in (400, 422), (bad, answer.text)
    for params in ({"status": "done"}, {"codeVersion": ""}, {"tag": ["x"] * 21}):
        answer = client.http.get(f"/api/datasets/{dataset_id}/runs", params=params)
        assert answer.status_code in (400, 422), (params, answer.text)
    assert client.list_runs(dataset_id).pagination.total == 3

    listed = evalledger("runs", "list", dataset_id, "--tag", "main", "--model", "gpt-large", url=service.url)
    assert listed.returncode == 0 and str(b.id) in listed.stdout and str(a.id) not in listed.stdout
    assert "fed987" in listed.stdout and "gpt-large" in listed.stdout


def test_a_target_model_counts_as_the_run_model(settings: Settings) -> None:
    with LLMServer() as llm, running_service(with_settings(settings, http_allowlist=(llm.base_url,))) as svc:
        client = svc.client
        dataset_id = dataset_with_items(client)
        served = client.run_and_wait(dataset_id, target={"type": "openai", "baseUrl": llm.base_url,
                                                         "model": "served", "promptTemplate": "{{input}}"}, timeout=60)
        named = client.create_run(dataset_id, model="served")
        client.create_run(dataset_id, model="other")
        assert ids(client.list_runs(dataset_id, model="served").runs) == {str(served.id), str(named.id)}


SCRIPT = """
import sys
import evalledger

def task(n):
    return n

result = evalledger.evaluate("meta", task, ["exact-match"], url=sys.argv[1], progress=False,
                             model="m1", prompt="{{input}}", tags=["ci"])
print(result.run_id)
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def run_script(script: Path, url: str) -> str:
    done = subprocess.run([sys.executable, str(script), url], capture_output=True, text=True, timeout=120,
                          cwd=script.parent)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_evaluate_records_the_git_commit_of_the_callers_code(service: Service, tmp_path: Path) -> None:
    client = service.client
    dataset_id = dataset_with_items(client)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    script = repo / "evals.py"
    script.write_text(SCRIPT)
    git(repo, "add", "evals.py")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "evals")
    commit = git(repo, "rev-parse", "HEAD")

    clean = client.get_run(run_script(script, service.url))
    assert clean.metadata["codeVersion"] == commit
    assert (clean.metadata["model"], clean.metadata["tags"]) == ("m1", ["ci"])
    assert clean.metadata["prompt"] == {"template": "{{input}}", "version": prompt_version("{{input}}")}

    script.write_text(SCRIPT + "\n# changed\n")
    dirty = client.get_run(run_script(script, service.url))
    assert dirty.metadata["codeVersion"] == commit + "-dirty"
    assert ids(client.list_runs(dataset_id, code_version=commit[:8]).runs) == {str(clean.id), str(dirty.id)}
    assert ids(client.list_runs(dataset_id, tags=["ci"], model="m1").runs) == {str(clean.id), str(dirty.id)}

    outside = tmp_path / "plain"
    outside.mkdir()
    (outside / "evals.py").write_text(SCRIPT)
    assert "codeVersion" not in client.get_run(run_script(outside / "evals.py", service.url)).metadata

    def same(n: int) -> int:
        return n

    given = evaluate("meta", same, ["exact-match"], url=service.url, progress=False, code_version="release-7")
    assert given.run["metadata"]["codeVersion"] == "release-7"
    none = evaluate("meta", same, ["exact-match"], url=service.url, progress=False, code_version=False)
    assert "codeVersion" not in none.run["metadata"]
    with pytest.raises(InvalidRequestError, match="model is given twice"):
        evaluate("meta", same, ["exact-match"], url=service.url, progress=False, model="a", metadata={"model": "b"})
