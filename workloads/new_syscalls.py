"""Call every x86-64 syscall added between Linux 6.1 and 6.12 once, with arguments that
make each fail harmlessly (bad fd, NULL pointer, zero length): a 6.1 kernel answers
ENOSYS to all twelve, a 6.12 kernel something else. Nothing is changed on the machine.
"""

import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
AT_FDCWD = -100
MISSING = b"/nonexistent-regress-path"

CALLS = {
    451: (-1, 0, 0, 0, 0),  # cachestat(fd=-1): EBADF
    452: (AT_FDCWD, MISSING, 0o644, 0),  # fchmodat2(missing path): ENOENT
    453: (0, 0, 0),  # map_shadow_stack(size 0): EINVAL / EOPNOTSUPP
    454: (0, 0, 0, 0),  # futex_wake(NULL): EINVAL
    455: (0, 0, 0, 0, 0, 0),  # futex_wait(NULL): EINVAL
    456: (0, 0, 0, 0),  # futex_requeue(NULL): EINVAL / EFAULT
    457: (0, 0, 0, 0),  # statmount(NULL): EFAULT
    458: (0, 0, 0, 0),  # listmount(NULL): EFAULT
    459: (0, 0, 0, 1 << 31),  # lsm_get_self_attr(bad flags): EINVAL
    460: (0, 0, 0, 1 << 31),  # lsm_set_self_attr(bad flags): EINVAL
    461: (0, 0, 1 << 31),  # lsm_list_modules(bad flags): EINVAL
    462: (0, 1, 1 << 31),  # mseal(bad flags): EINVAL
}

for nr, args in CALLS.items():
    libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
os.write(1, b"called %d syscalls\n" % len(CALLS))
