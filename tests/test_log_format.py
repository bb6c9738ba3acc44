"""CUTOVER_LOG_FORMAT=json: every log line on stderr is one JSON object a log pipeline reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_json_log_lines_are_objects_with_time_level_logger_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOVER_", "SLACK_"))}
    env.update(CUTOVER_LOG_FORMAT="json", CUTOVER_DATABASE_URL=f"sqlite:///{tmp_path / 'j.db'}")
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines, "no log line"
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys()
        assert line["time"].endswith("+00:00")
    assert any(
        line["logger"] == "bot.store.db" and "upgraded from none to" in line["message"]
        for line in lines
    )
