"""Child process for tests/test_ledger_crash.py: appends ledger batches until killed.

    python tests/ledger_crash_writer.py ROOT TENANT FIRST
        append batches FIRST, FIRST+1, ... of 3 records each; print each batch's number
        (flushed) after ``append`` returned.
"""

from __future__ import annotations

import sys

from vigil.ledger import chain
from vigil.store import Store


def main() -> None:
    root, tenant, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store(root)
    b = first
    while True:
        chain.append(store, tenant, [{"kind": "feedback", "subject": f"feedback:{b}-{i}",
                                      "outputs": {"batch": b, "i": i}} for i in range(3)])
        print(b, flush=True)
        b += 1


if __name__ == "__main__":
    main()
