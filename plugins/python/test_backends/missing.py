"""missing - needs a framework that is not installed (tests only)."""
DESCRIPTION = "needs a framework that is not installed (tests only)"
CAPABILITIES = "cpu f32"

import fairbench_no_such_framework  # noqa: F401
