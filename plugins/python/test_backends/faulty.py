"""faulty - fails on purpose, the way the option `fault` says (tests only):
raise (a RuntimeError in decode), value (a ValueError in decode), unsupported
(refuses create), hang (decode never returns), crash (decode segfaults inside
Python), print (writes to stdout, which must not reach the host's)."""
DESCRIPTION = "fails on purpose (tests only)"
CAPABILITIES = "cpu f32"
OPTIONS = "fault"

import ctypes
import threading
import time

import fairbench as fb


class Backend(fb.Backend):
    def __init__(self, model, settings):
        self.fault = settings.options.get("fault", "raise")
        self.n_vocab = model.n_vocab
        if self.fault == "unsupported":
            raise fb.Unsupported(f"faulty refuses weight precision {settings.weight_precision} on purpose")
        if self.fault not in ("raise", "hang", "crash", "print", "value"):
            raise ValueError(f"unknown fault '{self.fault}'")

    def decode(self, token, logits):
        if self.fault == "raise":
            raise RuntimeError("deliberate failure in decode\nsecond line of the message")
        if self.fault == "value":
            raise ValueError("deliberate bad value")
        if self.fault == "hang":
            while True:
                time.sleep(1)
        if self.fault == "crash":
            ctypes.string_at(0)
        print("this line must not reach stdout")
        return 0

    def reset(self):
        pass

    def effective_settings(self):
        return fb.Effective("f32", "f32", threads=1, device="CPU: nothing")
