"""Build a database with ipmi-monitor's real schema (tables ``server``,
``server_config``, ``ssh_key``), as its SQLAlchemy models create it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE ssh_key (
    id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL UNIQUE, key_content TEXT NOT NULL,
    fingerprint VARCHAR(100), created_at DATETIME, updated_at DATETIME);
CREATE TABLE server (
    id INTEGER PRIMARY KEY, bmc_ip VARCHAR(45) NOT NULL UNIQUE, server_name VARCHAR(100) NOT NULL,
    server_ip VARCHAR(45), public_ip VARCHAR(45), enabled BOOLEAN, use_nvidia_password BOOLEAN,
    protocol VARCHAR(20), notes TEXT, created_at DATETIME, updated_at DATETIME,
    status VARCHAR(20) DEFAULT 'active', deprecated_at DATETIME, deprecated_reason TEXT);
CREATE TABLE server_config (
    id INTEGER PRIMARY KEY, bmc_ip VARCHAR(45) NOT NULL UNIQUE, server_name VARCHAR(100),
    server_ip VARCHAR(45), ipmi_user VARCHAR(100), ipmi_pass VARCHAR(100), ssh_user VARCHAR(100) DEFAULT 'root',
    ssh_pass VARCHAR(100), ssh_key TEXT, ssh_key_id INTEGER REFERENCES ssh_key(id), ssh_port INTEGER DEFAULT 22,
    created_at DATETIME, updated_at DATETIME);
"""


def make_ipmi_monitor_db(path: Path, servers: list[dict], keys: list[dict]) -> Path:
    """``servers``: dicts with bmc_ip, server_name, server_ip and optional ssh_user,
    ssh_port, ssh_key_id, ssh_key, ssh_pass, ipmi_pass, status. ``keys``: id, name, key_content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    with conn:
        conn.executescript(SCHEMA)
        for key in keys:
            conn.execute("INSERT INTO ssh_key (id, name, key_content, fingerprint) VALUES (?, ?, ?, ?)",
                         (key["id"], key["name"], key["key_content"], key.get("fingerprint", "")))
        for s in servers:
            conn.execute(
                "INSERT INTO server (bmc_ip, server_name, server_ip, enabled, status) VALUES (?, ?, ?, 1, ?)",
                (s["bmc_ip"], s["server_name"], s.get("server_ip"), s.get("status", "active")),
            )
            conn.execute(
                "INSERT INTO server_config (bmc_ip, server_name, server_ip, ipmi_user, ipmi_pass, ssh_user, "
                "ssh_pass, ssh_key, ssh_key_id, ssh_port) VALUES (?, ?, ?, 'ADMIN', ?, ?, ?, ?, ?, ?)",
                (s["bmc_ip"], s["server_name"], s.get("server_ip"), s.get("ipmi_pass", "secret-ipmi"),
                 s.get("ssh_user", "root"), s.get("ssh_pass"), s.get("ssh_key"), s.get("ssh_key_id"),
                 s.get("ssh_port", 22)),
            )
    conn.close()
    return path
