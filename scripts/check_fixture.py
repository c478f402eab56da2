"""Check this project against a reference fixture folder computed by a release's own code.

    python scripts/check_fixture.py $SAGE_REFERENCE_DIR/fixtures/sage_release
    python scripts/check_fixture.py FOLDER --kind xdecoder_tiny

The kind (sage_release, xdecoder_tiny, sgafusion_release) is recognised from the folder's files. The
fixture's weights are loaded into the project's own modules, every tensor the fixture holds is recomputed,
and one line per tensor gives the max absolute and relative difference (relative to the largest
reference value). The last line is `fixture <kind>: <n> tensors, worst relative difference <x>: PASS`
(exit 0) or `... FAIL` (exit 1). Shapes and settings are read from the fixture itself.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance import KINDS, FixtureError, check, detect_kind  # noqa: E402
from utils.errors import first_line  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="fixture folder (e.g. $SAGE_REFERENCE_DIR/fixtures/sage_release, docs/testing.md)")
    p.add_argument("--kind", choices=sorted(KINDS), help="skip recognition and treat the folder as this kind")
    args = p.parse_args(argv)
    try:
        kind = args.kind or detect_kind(args.folder)
        results = []
        for comparison in check(args.folder, kind):
            print(comparison.line(), flush=True)
            results.append(comparison)
    except (FixtureError, FileNotFoundError, KeyError) as exc:
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return 2
    # Counts compared with a reference of 0 (e.g. 8-bit values off by one level) have no relative difference;
    # their lines show the absolute one.
    worst = max((c.max_rel for c in results if math.isfinite(c.max_rel)), default=0.0)
    ok = bool(results) and all(c.passed for c in results)
    print(f"fixture {kind}: {len(results)} tensors, worst relative difference {worst:.3e}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
