"""Holds one connection to a simulated host's libvirtd for as long as the daemon lives.

libvirtd resets the state of `test:///default` when its last client disconnects; this process is that last
client. Run as `python -m hosts.drivers.keeper URI`; it exits when the daemon goes away.
"""

import sys
import time

import libvirt

POLL_S = 1.0


def keep(uri: str) -> int:
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(uri)
    print("ready", flush=True)
    while True:
        time.sleep(POLL_S)
        try:
            conn.getLibVersion()
        except libvirt.libvirtError:
            return 0


if __name__ == "__main__":
    sys.exit(keep(sys.argv[1]))
