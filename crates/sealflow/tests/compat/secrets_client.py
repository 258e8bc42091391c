"""Drives sealflow's secrets API with the official `encrata` client, unchanged.

Run by tests/python_client.rs with SEALFLOW_URL and SEALFLOW_KEY set; exits non-zero on the first
failed check.
"""

import os
import sys

from encrata import Encrata
from encrata.exceptions import AuthenticationError, InvalidRequestError

base = os.environ["SEALFLOW_URL"]
client = Encrata(os.environ["SEALFLOW_KEY"], base_url=base, max_retries=0)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}")
        sys.exit(1)


check(client.list_workflow_secrets() == [], "a new workspace has no secrets")

created = client.create_workflow_secret("CRM_API_KEY", "client-secret-value")
check(created.get("success") is True and created.get("name") == "CRM_API_KEY", f"create: {created}")
client.create_workflow_secret("KEPT_BY_CLIENT", "another-value")
client.create_workflow_secret("CRM_API_KEY", "rotated-value")  # replace answers 200

secrets = client.list_workflow_secrets()
names = [s.name for s in secrets]
check(names == ["CRM_API_KEY", "KEPT_BY_CLIENT"], f"list names: {names}")
check(all(s.created_at for s in secrets), "list carries created_at")
check("client-secret-value" not in repr(secrets), "values never come back")

deleted = client.delete_workflow_secret("CRM_API_KEY")
check(deleted.get("success") is True, f"delete: {deleted}")
check([s.name for s in client.list_workflow_secrets()] == ["KEPT_BY_CLIENT"], "deleted")

try:
    client.create_workflow_secret("bad-name!", "v")
    check(False, "a bad name must raise")
except InvalidRequestError as e:
    check(e.status_code == 400 and "name must match" in e.message, f"bad name: {e.status_code} {e.message}")

try:
    Encrata("sf_live_" + "x" * 40, base_url=base, max_retries=0).list_workflow_secrets()
    check(False, "a bad key must raise")
except AuthenticationError as e:
    check(e.status_code == 401, f"bad key: {e.status_code}")

print("all client checks passed")
