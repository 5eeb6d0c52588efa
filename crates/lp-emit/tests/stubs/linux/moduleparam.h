/* Test stub of <linux/moduleparam.h>, mirroring the kernel's names and field order. */
#ifndef _LP_STUB_LINUX_MODULEPARAM_H
#define _LP_STUB_LINUX_MODULEPARAM_H

#include <linux/kernel.h>

#define __MODULE_INFO_PREFIX /* empty */
#define MODULE_PARAM_PREFIX "stub."

#define __MODULE_INFO(tag, name, info)                                        \
	static const char __UNIQUE_ID(name)[]                                  \
		__used __section(".modinfo") __aligned(1)                      \
		= __MODULE_INFO_PREFIX __stringify(tag) "=" info

#define MODULE_PARM_DESC(_parm, desc) \
	__MODULE_INFO(parm, _parm, #_parm ":" desc)

struct kernel_param;

struct kernel_param_ops {
	/* How the ops should behave */
	unsigned int flags;
	/* Returns 0, or -errno.  arg is in kp->arg. */
	int (*set)(const char *val, const struct kernel_param *kp);
	/* Returns length written or -errno.  Buffer is 4k (ie. be short!) */
	int (*get)(char *buffer, const struct kernel_param *kp);
	/* Optional function to free kp->arg when module unloaded. */
	void (*free)(void *arg);
};

struct module;

struct kernel_param {
	const char *name;
	struct module *mod;
	const struct kernel_param_ops *ops;
	const unsigned short perm;
	signed char level;
	unsigned char flags;
	union {
		void *arg;
		const struct kparam_string *str;
		const struct kparam_array *arr;
	};
};

#define __module_param_call(prefix, name, ops, arg, perm, level, flags)       \
	static const char __param_str_##name[] = prefix #name;                 \
	static struct kernel_param __param_##name                              \
	__used __section("__param")                                            \
	__aligned(__alignof__(struct kernel_param))                            \
	= { __param_str_##name, ((struct module *)0), ops,                     \
	    perm, level, flags, { arg } }

#define module_param_cb(name, ops, arg, perm)                                 \
	__module_param_call(MODULE_PARAM_PREFIX, name, ops, arg, perm, -1, 0)

int param_get_bool(char *buffer, const struct kernel_param *kp);
int param_get_uint(char *buffer, const struct kernel_param *kp);

#endif
