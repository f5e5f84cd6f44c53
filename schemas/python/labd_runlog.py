"""Write the labd run log (JSONL) from a training script. Dependency-free; Python 3.8+.

    from labd_runlog import RunLog

    with RunLog("/var/lib/labd/inbox/baseline.jsonl", name="baseline",
                config={"optim": {"lr": 1e-3}, "seed": 1}, tags=["resnet"]) as run:
        for step in range(100):
            run.log({"loss": 0.5, "acc": 0.8}, split="train", step=step, epoch=step // 10)
        run.summary("final", {"test_acc": 0.91})
        run.artifact("checkpoint", "checkpoints/best.pt")
    # leaving the block writes status "completed" (or "failed" with the exception)

Every line is flushed as it is written, so labd sees it within a second. NaN and infinities are written as
Python writes them (NaN, Infinity, -Infinity), which labd accepts.
"""

import json
import os
import time

__all__ = ["RunLog"]

STATUSES = ("running", "completed", "failed", "interrupted")


class RunLog:
    """One run in a labd run log file (appended to, so a file may hold several runs)."""

    def __init__(self, path, name=None, config=None, tags=None, description=None, **extra):
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")
        self._finished = False
        line = {"kind": "run", "time": time.time(), "config": config or {}, "tags": list(tags or [])}
        if name is not None:
            line["name"] = name
        if description is not None:
            line["description"] = description
        line.update(extra)
        self._write(line)

    def _write(self, line):
        self._file.write(json.dumps(line, default=_jsonable) + "\n")
        self._file.flush()

    def log(self, values, split=None, step=None, epoch=None, x=None, time_=None):
        """Metric values (name -> number) at one step; `x` holds custom axes, e.g. {"tokens": 61440}."""
        line = {"kind": "metrics", "time": time.time() if time_ is None else time_, "values": dict(values)}
        if split is not None:
            line["split"] = split
        if step is not None:
            line["step"] = int(step)
        if epoch is not None:
            line["epoch"] = epoch
        if x:
            line["x"] = dict(x)
        self._write(line)

    def message(self, text, level="info"):
        self._write({"kind": "message", "level": level, "text": str(text), "time": time.time()})

    def summary(self, group, values):
        """A named group of values (any JSON), e.g. summary("final", {...}) or summary("bias", {...})."""
        self._write({"kind": "summary", "group": group, "values": values})

    def artifact(self, role, path, sha256=None):
        """A file the run produced; a relative path is relative to the run log's folder."""
        line = {"kind": "artifact", "role": role, "path": str(path)}
        if sha256 is not None:
            line["sha256"] = sha256
        self._write(line)

    def finish(self, status="completed", notes=None):
        if status not in STATUSES:
            raise ValueError("status must be one of %s" % (STATUSES,))
        line = {"kind": "status", "status": status}
        if notes is not None:
            line["notes"] = notes
        self._write(line)
        self._finished = True

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self._finished:
            if exc_type is None:
                self.finish("completed")
            elif issubclass(exc_type, KeyboardInterrupt):
                self.finish("interrupted", notes="KeyboardInterrupt")
            else:
                self.finish("failed", notes="%s: %s" % (exc_type.__name__, exc))
        self.close()
        return False


def _jsonable(value):
    """numpy scalars and arrays, paths and the like."""
    for attr in ("item", "tolist"):
        if hasattr(value, attr):
            return getattr(value, attr)()
    return str(value)


if __name__ == "__main__":
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else "example.jsonl"
    with RunLog(target, name="demo", config={"optim": {"lr": 0.001, "name": "adam"}, "seed": 0}, tags=["demo"]) as r:
        for s in range(10):
            r.log({"loss": 1.0 / (s + 1), "acc": s / 10}, split="train", step=s, epoch=s // 5)
        r.log({"loss": 0.2, "acc": 0.9}, split="val", step=9, epoch=1)
        r.summary("final", {"test_acc": 0.9, "test_f1": 0.88})
    print(target)
