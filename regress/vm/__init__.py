"""Run workloads in VMs: kernel cache, guest image, QEMU/Vagrant backends, ``regress run``.

Host-side only (never shipped into the guest); the guest side is ``regress.guest.agent``.
"""
