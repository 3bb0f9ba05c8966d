"""PromQL fragments shared by several dashboards."""

from __future__ import annotations


def xid_counts(selector: str, window: str) -> str:
    """XIDs per GPU and code over ``window``. A code's counter appears at its
    first occurrence already at 1, which increase() cannot see: a series that
    did not exist ``window`` ago counts with its whole value."""
    xids = f"DCGM_FI_DEV_XID_ERRORS_TOTAL{{{selector}}}"
    new = f"({xids} unless {xids} offset {window})"
    return f"((increase({xids}[{window}]) unless {new}) or {new})"
