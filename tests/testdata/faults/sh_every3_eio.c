// regress fault: BPF-LSM file_open denies every 3rd open of another process's /proc/<pid>/status by comm 'sh' with -EIO
#include <linux/fs.h>
#include <linux/dcache.h>
#include <linux/pid.h>
#include <linux/sched.h>

#define REGRESS_PROC_SUPER_MAGIC 0x9fa0
#define REGRESS_FAULT_EVERY 3
#define REGRESS_FAULT_ERRNO 5 /* EIO */

// [0] matching opens seen, [1] opens denied
BPF_ARRAY(fault_stats, u64, 2);

// A /proc/<pid> directory name as a number; -1 when it is not one.
static __always_inline long parse_pid(const char *s)
{
    long v = 0;
    if (s[0] < '0' || s[0] > '9')
        return -1;
#pragma unroll
    for (int i = 0; i < 11; i++) {
        if (s[i] == 0)
            return v;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return -1;
}

// The caller's process id in its own pid namespace (what its /proc shows).
static __always_inline long own_ns_pid(void)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct task_struct *leader = NULL;
    struct pid *pid = NULL;
    unsigned int level = 0;
    int nr = -1;
    bpf_probe_read_kernel(&leader, sizeof(leader),
                          (void *)task + offsetof(struct task_struct, group_leader));
    if (!leader)
        return -1;
    bpf_probe_read_kernel(&pid, sizeof(pid),
                          (void *)leader + offsetof(struct task_struct, thread_pid));
    if (!pid)
        return -1;
    bpf_probe_read_kernel(&level, sizeof(level), (void *)pid + offsetof(struct pid, level));
    bpf_probe_read_kernel(&nr, sizeof(nr),
                          (void *)pid + offsetof(struct pid, numbers) +
                          (level & 31) * sizeof(struct upid) + offsetof(struct upid, nr));
    return nr;
}

LSM_PROBE(file_open, struct file *file)
{
    char comm[16] = {};
    char name[32] = {};
    char parent[32] = {};
    bpf_get_current_comm(&comm, sizeof(comm));
    if (!(comm[0] == 's' && comm[1] == 'h' && comm[2] == 0))
        return 0;
    struct dentry *d = file->f_path.dentry;
    struct super_block *sb = d->d_sb;
    if (sb->s_magic != REGRESS_PROC_SUPER_MAGIC)
        return 0;
    bpf_probe_read_kernel_str(name, sizeof(name), d->d_name.name);
    if (!(name[0] == 's' && name[1] == 't' && name[2] == 'a' && name[3] == 't' && name[4] == 'u' && name[5] == 's' && name[6] == 0))
        return 0;
    struct dentry *p = d->d_parent;
    bpf_probe_read_kernel_str(parent, sizeof(parent), p->d_name.name);
    long target = parse_pid(parent);
    // Only other processes' files: a process reading its own (ps does at start-up) is
    // left alone, so the fault hides processes instead of making the workload abort.
    if (target < 0 || target == own_ns_pid())
        return 0;
    int slot = 0;
    u64 *seen = fault_stats.lookup(&slot);
    if (!seen)
        return 0;
    u64 n = __sync_fetch_and_add(seen, 1) + 1;
    if (n % REGRESS_FAULT_EVERY != 0)
        return 0;
    slot = 1;
    u64 *denied = fault_stats.lookup(&slot);
    if (denied)
        __sync_fetch_and_add(denied, 1);
    return -REGRESS_FAULT_ERRNO;
}
