"""A stable alert fingerprint: the type plus the finding's identity, never churning addresses."""

from __future__ import annotations

import hashlib
import json


def fingerprint(alert_type: str, identity: dict[str, str]) -> str:
    """16 hex digits of sha256 over the type and the sorted identity; same input, same id."""
    blob = json.dumps([alert_type, sorted(identity.items())], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
