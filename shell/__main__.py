"""nsvirsh: virsh for nsvirt. `nsvirsh [OPTIONS] COMMAND [ARGS]`, or `nsvirsh 'cmd1; cmd2'`.

`python -m nsvirt.shell` and the installed `nsvirsh` script (shell/bin/nsvirsh) both
start in shell/quick.py, which answers the daily commands without heavy imports
and hands the rest to shell/oneshot.py.
"""

from __future__ import annotations

import sys

from nsvirt.shell.quick import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
