"""Report the isolation this machine gives generated code: `python -m transferlab.sandbox`.

Exits 0 and lists the protections when code may run (isolated, or unisolated because
TRANSFERLAB_ALLOW_UNSAFE_CODE=1 says so); else one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

from transferlab.sandbox.bwrap import SandboxUnavailable, require


def main() -> int:
    try:
        iso = require()
    except SandboxUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for protection in iso.protections():
        print(protection)
    return 0


if __name__ == "__main__":
    sys.exit(main())
