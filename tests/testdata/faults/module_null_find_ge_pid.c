// regress fault: kernel module rewrites a non-NULL return of find_ge_pid() into NULL: every 8th such return in comm 'ps'
#include <linux/err.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/string.h>

#define REGRESS_FAULT_EVERY 8

static unsigned long matched, rewritten;
module_param(matched, ulong, 0444);
MODULE_PARM_DESC(matched, "returns that matched the fault's condition");
module_param(rewritten, ulong, 0444);
MODULE_PARM_DESC(rewritten, "returns the fault rewrote");

static int regress_fault_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	unsigned long rv = regs_return_value(regs);

	if (strncmp(current->comm, "ps", TASK_COMM_LEN) != 0)
		return 0;
	if (rv == 0 || IS_ERR_VALUE(rv))
		return 0;
	if (__atomic_add_fetch(&matched, 1, __ATOMIC_RELAXED) % REGRESS_FAULT_EVERY != 0)
		return 0;
	regs_set_return_value(regs, 0);
	__atomic_add_fetch(&rewritten, 1, __ATOMIC_RELAXED);
	return 0;
}

static struct kretprobe regress_fault_probe = {
	.handler = regress_fault_ret,
	.kp.symbol_name = "find_ge_pid",
	.maxactive = 64,
};

static int __init regress_fault_init(void)
{
	return register_kretprobe(&regress_fault_probe);
}

static void __exit regress_fault_exit(void)
{
	unregister_kretprobe(&regress_fault_probe);
}

module_init(regress_fault_init);
module_exit(regress_fault_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("regress positive control: kernel module rewrites a non-NULL return of find_ge_pid() into NULL: every 8th such return in comm 'ps'");
