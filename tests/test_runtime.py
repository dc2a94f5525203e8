"""Process-wide tuning for `restock run`, checked in a fresh interpreter (it changes it)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_tune_gc_freezes_startup_objects_and_collects_less_often() -> None:
    script = (
        "import gc, json\n"
        "from watcher.service.runtime import GC_THRESHOLDS, tune_gc\n"
        "before = gc.get_threshold()\n"
        "tune_gc()\n"
        "print(json.dumps({'before': before, 'after': gc.get_threshold(),"
        " 'wanted': GC_THRESHOLDS, 'frozen': gc.get_freeze_count()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(done.stdout)
    assert seen["after"] == list(seen["wanted"]) != seen["before"]
    assert seen["after"][0] > seen["before"][0]  # the youngest generation is collected less often
    assert seen["frozen"] > 1000  # the modules loaded so far are out of every later collection
