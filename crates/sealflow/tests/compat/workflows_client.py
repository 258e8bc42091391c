"""Drives sealflow's workflows API with the official `encrata` client, unchanged.

Run by tests/python_client.rs with SEALFLOW_URL and SEALFLOW_KEY set; exits non-zero on the first
failed check.
"""

import os
import sys

import httpx
from encrata import Encrata
from encrata.exceptions import APIError

client = Encrata(os.environ["SEALFLOW_KEY"], base_url=os.environ["SEALFLOW_URL"], max_retries=0)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}")
        sys.exit(1)


steps = [
    {"id": "notify", "type": "webhook",
     "config": {"url": "https://hooks.example.com/x", "headers": {"Authorization": "Bearer {{secrets.TOKEN}}"}}},
]
wf = client.create_workflow("From Python", description="made by the client", steps=steps)
check(wf.id.startswith("wf_") and wf.status == "draft" and wf.version == 1, f"create: {wf}")
check(wf.steps[0].id == "notify" and wf.steps[0].type == "webhook", f"steps: {wf.steps}")
check(wf.trigger == {"type": "manual", "config": {}}, f"trigger: {wf.trigger}")

got = client.get_workflow(wf.id)
check(got.name == "From Python" and got.description == "made by the client", f"get: {got}")

updated = client.update_workflow(wf.id, status="active")
check(updated.status == "active" and updated.version == 2 and len(updated.steps) == 1, f"update: {updated}")

workflows, total = client.list_workflows(status="active")
check(total == 1 and workflows[0].id == wf.id, f"list: {total} {workflows}")
_, total_all = client.list_workflows(page=1, limit=5)
check(total_all == 1, f"list all: {total_all}")

templates = client.list_workflow_templates()
check(len(templates) >= 4 and all(t.id and t.category and t.steps for t in templates), f"templates: {templates}")
category = templates[0].category
check(all(t.category == category for t in client.list_workflow_templates(category=category)), "category filter")

from_template = client.create_workflow("Cloned", template_id=templates[0].id)
check(from_template.name == "Cloned" and len(from_template.steps) == len(templates[0].steps), "from template")

try:
    client.create_workflow("Bad", steps=[{"id": "s1", "type": "email_lookup", "config": {}}])
    check(False, "an unsupported step type must raise")
except APIError as e:
    check(e.status_code == 422 and "email_lookup" in e.message and "webhook" in e.message, f"422: {e.message}")

# Runs: the client reads them; it has no call to start one, so start it with plain HTTP.
shaper = client.create_workflow(
    "Shaper", steps=[{"id": "shape", "type": "transform", "config": {"output": {"doubled": "{{input.x}}{{input.x}}"}}}]
)
started = httpx.post(
    f"{os.environ['SEALFLOW_URL']}/api/workflows/{shaper.id}/run?wait=10",
    headers={"Authorization": f"Bearer {os.environ['SEALFLOW_KEY']}"},
    json={"input": {"x": "ab"}},
)
check(started.status_code == 201, f"run: {started.status_code} {started.text}")
run = client.get_workflow_run(started.json()["id"])
check(run.status == "completed" and run.workflow_id == shaper.id and run.workflow_name == "Shaper", f"run: {run}")
check(run.steps_total == 1 and run.steps_completed == 1, f"run counts: {run}")
check(run.steps[0].output == {"doubled": "abab"} and run.steps[0].status == "completed", f"steps: {run.steps}")
check(run.input == {"x": "ab"} and run.completed_at, f"run fields: {run}")
runs, total = client.list_workflow_runs(workflow_id=shaper.id)
check(total == 1 and runs[0].id == run.id, f"list runs: {total} {runs}")

print("all client checks passed")
