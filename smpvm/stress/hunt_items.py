"""The items of `smpvm hunt` (smpvm.stress.hunt): pytest collects this
module with --pyargs, smpvm's pytest plugin parametrises smpvm_hunt_slot
over the hunt's slots, and each item is one run, drawn when it starts.
A finding fails the item (pytest -x ends the hunt); an item that starts
after the budget or another finding is skipped.  The run's summary goes
back to the controller as a user property, across xdist workers too.
"""
import json

import pytest

from smpvm.stress.hunt import run_slot, stopped


def test_run(smpvm_hunt, smpvm_hunt_slot, record_property):
    if stopped(smpvm_hunt):
        pytest.skip("the hunt is over")
    res, failure = run_slot(smpvm_hunt, smpvm_hunt_slot)
    record_property("smpvm_run", json.dumps(res, default=str))
    if res["ended"] == "interrupted":
        pytest.exit("interrupted", returncode=pytest.ExitCode.INTERRUPTED)
    if failure:
        pytest.fail(failure, pytrace=False)
