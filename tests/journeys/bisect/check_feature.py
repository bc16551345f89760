"""The test a developer already has, for the bisect's HIL test: reads /etc/rk-feature on the
device the bisect just flashed (over SSH, host key checked) and passes when it says ``ok``."""

from __future__ import annotations

import os
import sys


def main() -> int:
    from toolkit import targets
    from toolkit.journeys.verify import host_key_context
    from toolkit.target.ssh import connect_target

    target = targets.from_sample(os.environ["ROUTERKIT_TARGET"])
    conn = connect_target(target, context=host_key_context(target), connect_timeout=15)
    try:
        answer = conn.run("cat /etc/rk-feature", timeout=20).stdout
    finally:
        conn.close()
    print(f"{os.environ.get('ROUTERKIT_BISECT_VERSION')}: /etc/rk-feature says {answer!r}")
    return 0 if answer.strip() == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
