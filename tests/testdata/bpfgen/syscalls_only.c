// regress tracer, generator v5 (regress/bpfgen.py); do not edit.
// Reads only tracepoint arguments and BPF helpers: no kernel structs.
// syscalls=1 retvals=0 tracepoints=0 functions=0

#define LOST_TRACKED_FULL 0
#define LOST_COUNTS_FULL 1
#define LOST_FUNCTIONS_FULL 2
#define LOST_RETURNS_FULL 3
#define LOST_ORIGINS_FULL 4

BPF_ARRAY(tracked, u32, 32768);
BPF_ARRAY(generation, u32, 1);
BPF_F_TABLE("array", int, u64, lost, 5, 1024);
struct sc_key {
    u32 id;
    u16 err;
    u16 bucket;
};
BPF_HASH(counts, struct sc_key, u64, 16384);
BPF_F_TABLE("array", int, u64, okcounts, 512, 1024);

static __always_inline u32 current_generation(void)
{
    u32 zero = 0;
    u32 *g = generation.lookup(&zero);
    return g ? *g : 0;
}

static __always_inline int is_tracked(u32 pid)
{
    u32 *t = tracked.lookup(&pid);
    return t && *t != 0 && *t == current_generation();
}

static __always_inline int current_tracked(void)
{
    return is_tracked((u32)bpf_get_current_pid_tgid());
}

static __always_inline void lost_inc(u32 i)
{
    u64 *v = lost.lookup(&i);
    if (v)
        __sync_fetch_and_add(v, 1);
}

// A tracked thread's child (process or thread) is tracked too.
TRACEPOINT_PROBE(sched, sched_process_fork)
{
    if (!is_tracked(args->parent_pid))
        return 0;
    u32 child = args->child_pid;
    u32 *t = tracked.lookup(&child);
    if (t)
        *t = current_generation();
    else
        lost_inc(LOST_TRACKED_FULL);  // tid >= pid_max at generation
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u32 pid = args->pid;
    if (!is_tracked(pid))
        return 0;
    u32 *t = tracked.lookup(&pid);
    if (t)
        *t = 0;
    return 0;
}

TRACEPOINT_PROBE(raw_syscalls, sys_exit)
{
    if (!current_tracked())
        return 0;
    long ret = args->ret;
    u32 id = (u32)args->id;
    struct sc_key k = {};
    if (ret < 0 && ret >= -4095) {
        k.err = (u16)(-ret);
    } else {
        if (id < 512) {
            u32 i = id;
            u64 *c = okcounts.lookup(&i);
            if (c)
                __sync_fetch_and_add(c, 1);
            return 0;
        }
    }
    k.id = id;
    u64 *v = counts.lookup(&k);
    if (v) {
        __sync_fetch_and_add(v, 1);
    } else {
        u64 one = 1;
        if (counts.insert(&k, &one) != 0) {
            v = counts.lookup(&k);
            if (v)
                __sync_fetch_and_add(v, 1);
            else
                lost_inc(LOST_COUNTS_FULL);
        }
    }
    return 0;
}
