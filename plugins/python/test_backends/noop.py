"""noop - does no work: measures the bridge's own cost per call (tests only)."""
DESCRIPTION = "does nothing: the bridge's own overhead per call (tests only)"
CAPABILITIES = "cpu f32"

import fairbench as fb


class Backend(fb.Backend):
    def __init__(self, model, settings):
        pass

    def decode(self, token, logits):
        return token

    def reset(self):
        pass

    def effective_settings(self):
        return fb.Effective("f32", "f32", threads=1, device="CPU: nothing")
