// regress tracer, generator v5 (regress/bpfgen.py); do not edit.
// Reads only tracepoint arguments and BPF helpers: no kernel structs.
// syscalls=1 retvals=1 tracepoints=0 functions=2

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
BPF_F_TABLE("array", int, u64, okcounts, 33280, 1024);
BPF_HASH(fcounts, u64, u64, 8192);
struct fr_key {
    u64 ip;
    s64 cls;
};
BPF_HASH(frcounts, struct fr_key, u64, 8192);
struct thread_state {
    u64 ip;  // origin: the traced function that returned err first
    u32 nr;  // the syscall the thread is in
    s32 err;  // the errno propagating (negative), 0: none
    s32 stack;  // origin's stack id, < 0: none
    u32 pad;
};
BPF_HASH(thread_state, u32, struct thread_state, 16384);
struct or_key {
    u64 ip;
    u32 nr;
    s32 err;
    s32 stack;
    u32 pad;
};
BPF_HASH(origins, struct or_key, u64, 16384);
BPF_STACK_TRACE(stacks, 1024);
struct fs_key {
    u64 ip;
    u32 nr;
    u32 pad;
};
BPF_HASH(fsys, struct fs_key, u64, 8192);

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
    thread_state.delete(&pid);  // errno origins: the thread is gone
    return 0;
}

// Errno origins: which syscall the thread is in; a new syscall, no origin yet.
TRACEPOINT_PROBE(raw_syscalls, sys_enter)
{
    if (!current_tracked())
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct thread_state st = {};
    st.nr = (u32)args->id;
    st.stack = -1;
    thread_state.update(&tid, &st);
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
        u32 tid = (u32)bpf_get_current_pid_tgid();
        struct thread_state *st = thread_state.lookup(&tid);
        struct or_key ok = {};
        ok.nr = id;
        ok.err = (s32)ret;
        ok.stack = -1;
        if (st && st->err == (s32)ret) {
            ok.ip = st->ip;
            ok.stack = st->stack;
        }
        {
            u64 *v = origins.lookup(&ok);
            if (v) {
                __sync_fetch_and_add(v, 1);
            } else {
                u64 one = 1;
                if (origins.insert(&ok, &one) != 0) {
                    v = origins.lookup(&ok);
                    if (v)
                        __sync_fetch_and_add(v, 1);
                    else
                        lost_inc(LOST_ORIGINS_FULL);
                }
            }
        }
    } else {
        if (ret > 0)
            k.bucket = (u16)bpf_log2l((unsigned long)ret);
        if (id < 512) {
            u32 i = id * 65 + k.bucket;
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

// One program for every function probe, keyed by the probed address.
int fn_hit(void *ctx)
{
    if (!current_tracked())
        return 0;
    u64 ip = bpf_get_func_ip(ctx);
    u64 *v = fcounts.lookup(&ip);
    if (v) {
        __sync_fetch_and_add(v, 1);
    } else {
        u64 one = 1;
        if (fcounts.insert(&ip, &one) != 0) {
            v = fcounts.lookup(&ip);
            if (v)
                __sync_fetch_and_add(v, 1);
            else
                lost_inc(LOST_FUNCTIONS_FULL);
        }
    }
    return 0;
}

// One program for every return probe: the function (the kretprobe's own
// address) and the class of its return value.
int fn_ret(void *ctx)
{
    if (!current_tracked())
        return 0;
    struct fr_key k = {};
    s64 rc = ((s64 *)ctx)[10];  // rax in the kprobe context (pt_regs)
    s32 low = (s32)rc;
    k.ip = bpf_get_func_ip(ctx);
    if (rc == 0)
        k.cls = 0;
    else if (rc < 0 && rc >= -4095)
        k.cls = rc;
    else if (((u64)rc >> 32) == 0 && low < 0 && low >= -4095)
        k.cls = low;
    else
        k.cls = 1;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct thread_state *st = thread_state.lookup(&tid);
    struct fs_key fk = {};
    fk.ip = k.ip;
    fk.nr = st ? st->nr : 4294967295u;
    if (st && k.cls < 0 && st->err != (s32)k.cls) {  // an errno is born here
        st->err = (s32)k.cls;
        st->ip = k.ip;
        st->stack = stacks.get_stackid(ctx, 0);
    }
    {
        u64 *v = fsys.lookup(&fk);
        if (v) {
            __sync_fetch_and_add(v, 1);
        } else {
            u64 one = 1;
            if (fsys.insert(&fk, &one) != 0) {
                v = fsys.lookup(&fk);
                if (v)
                    __sync_fetch_and_add(v, 1);
                else
                    lost_inc(LOST_RETURNS_FULL);
            }
        }
    }
    u64 *v = frcounts.lookup(&k);
    if (v) {
        __sync_fetch_and_add(v, 1);
    } else {
        u64 one = 1;
        if (frcounts.insert(&k, &one) != 0) {
            v = frcounts.lookup(&k);
            if (v)
                __sync_fetch_and_add(v, 1);
            else
                lost_inc(LOST_RETURNS_FULL);
        }
    }
    return 0;
}
