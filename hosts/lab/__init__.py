"""The QEMU lab: two libvirtd "hosts" on this machine with real TCG guests, ballooned and migrated for real.

`python manage.py lab up | down | status`; see docs/lab.md. Nothing here imports libvirt: it goes through
hosts.drivers like the rest of BalloonWeb.
"""
