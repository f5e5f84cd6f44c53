#!/usr/bin/env python3
"""A stand-in training script for sweeps: reads its config, appends metrics to its run log, exits.

Any script takes part in a labd sweep the same way: read the config file labd wrote (`{config}` or
$LABD_TRIAL_CONFIG) and append run-log lines to `{run_log}` ($LABD_RUN_LOG). labd wrote the run's first line
(name, config, tags) already, so open the run log for appending.

Test knobs in the config (all optional): `epochs`, `steps_per_epoch`, `sleep` (seconds per step),
`exit_code` (exit with it at the end), `fail_attempts` (fail the first N attempts, then succeed).
"""
import json
import math
import os
import sys
import time

config_path = sys.argv[1] if len(sys.argv) > 1 else os.environ["LABD_TRIAL_CONFIG"]
run_log = os.environ["LABD_RUN_LOG"]
with open(config_path) as f:
    config = json.load(f)

lr = float(config.get("optim", {}).get("lr", 0.01))
seed = int(config.get("seed", 0))
epochs = int(config.get("epochs", 3))
steps = int(config.get("steps_per_epoch", 5))
pause = float(config.get("sleep", 0))
attempt = int(os.environ.get("LABD_ATTEMPT", "1"))

with open(run_log, "a") as log:
    step = 0
    for epoch in range(epochs):
        for _ in range(steps):
            # A loss that falls fastest near lr = 0.01, with a little seed noise.
            rate = 1.0 / (1.0 + abs(math.log10(lr) + 2.0))
            loss = math.exp(-rate * (step + 1) / steps) + 0.01 * ((seed * 7 + step) % 5)
            log.write(json.dumps({"kind": "metrics", "split": "train", "step": step, "epoch": epoch,
                                  "values": {"loss": loss}}) + "\n")
            log.flush()
            step += 1
            if pause:
                time.sleep(pause)
        log.write(json.dumps({"kind": "metrics", "split": "val", "step": step, "epoch": epoch,
                              "values": {"acc": 1.0 - loss / 2}}) + "\n")
        log.flush()
    code = int(config.get("exit_code", 0))
    if attempt <= int(config.get("fail_attempts", 0)):
        code = 3
    status = "completed" if code == 0 else "failed"
    log.write(json.dumps({"kind": "status", "status": status}) + "\n")
sys.exit(code)
