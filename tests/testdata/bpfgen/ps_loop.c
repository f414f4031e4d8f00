// regress tracer, generator v1 (regress/bpfgen.py); do not edit.
// Reads only tracepoint arguments and BPF helpers: no kernel structs.
// syscalls=1 retvals=1 tracepoints=5 functions=0

#define LOST_TRACKED_FULL 0
#define LOST_COUNTS_FULL 1
#define LOST_FUNCTIONS_FULL 2

BPF_HASH(tracked, u32, u8, 65536);
BPF_ARRAY(lost, u64, 3);
struct sc_key {
    u32 id;
    u16 err;
    u16 bucket;
};
BPF_HASH(counts, struct sc_key, u64, 16384);
BPF_ARRAY(tpcounts, u64, 5);

static __always_inline int is_tracked(void)
{
    u32 pid = (u32)bpf_get_current_pid_tgid();
    return tracked.lookup(&pid) != NULL;
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
    u32 parent = args->parent_pid;
    if (!tracked.lookup(&parent))
        return 0;
    u32 child = args->child_pid;
    u8 one = 1;
    if (tracked.update(&child, &one) != 0)
        lost_inc(LOST_TRACKED_FULL);
    {
        u32 i = 0;
        u64 *v = tpcounts.lookup(&i);
        if (v)
            __sync_fetch_and_add(v, 1);
    }
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u32 pid = args->pid;
    if (!tracked.lookup(&pid))
        return 0;
    {
        u32 i = 2;
        u64 *v = tpcounts.lookup(&i);
        if (v)
            __sync_fetch_and_add(v, 1);
    }
    tracked.delete(&pid);
    return 0;
}

TRACEPOINT_PROBE(raw_syscalls, sys_exit)
{
    if (!is_tracked())
        return 0;
    long ret = args->ret;
    struct sc_key k = {};
    k.id = (u32)args->id;
    if (ret < 0 && ret >= -4095)
        k.err = (u16)(-ret);
    else if (ret > 0)
        k.bucket = (u16)bpf_log2l((unsigned long)ret);
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

// sched:sched_process_exec
int tp_1(void *ctx)
{
    if (!is_tracked())
        return 0;
    {
        u32 i = 1;
        u64 *v = tpcounts.lookup(&i);
        if (v)
            __sync_fetch_and_add(v, 1);
    }
    return 0;
}

// signal:signal_generate
int tp_3(void *ctx)
{
    if (!is_tracked())
        return 0;
    {
        u32 i = 3;
        u64 *v = tpcounts.lookup(&i);
        if (v)
            __sync_fetch_and_add(v, 1);
    }
    return 0;
}

// signal:signal_deliver
int tp_4(void *ctx)
{
    if (!is_tracked())
        return 0;
    {
        u32 i = 4;
        u64 *v = tpcounts.lookup(&i);
        if (v)
            __sync_fetch_and_add(v, 1);
    }
    return 0;
}
