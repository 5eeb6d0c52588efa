/* Test stub of <linux/module.h>: the macros lp-emit's generated core uses, with the kernel's
 * names and shapes (MODULE_INFO writes "tag=value" strings into .modinfo as the kernel does).
 * Not the kernel. */
#ifndef _LP_STUB_LINUX_MODULE_H
#define _LP_STUB_LINUX_MODULE_H

#include <linux/kernel.h>
#include <linux/moduleparam.h>

struct module;

#define THIS_MODULE ((struct module *)0)

typedef int (*initcall_t)(void);
typedef void (*exitcall_t)(void);

#define module_init(initfn)                                                   \
	static inline initcall_t __attribute__((unused)) __inittest(void)      \
	{ return initfn; }                                                     \
	int init_module(void) __attribute__((alias(#initfn)));

#define module_exit(exitfn)                                                   \
	static inline exitcall_t __attribute__((unused)) __exittest(void)      \
	{ return exitfn; }                                                     \
	void cleanup_module(void) __attribute__((alias(#exitfn)));

#define MODULE_INFO(tag, info) __MODULE_INFO(tag, tag, info)
#define MODULE_LICENSE(_license) MODULE_INFO(license, _license)
#define MODULE_DESCRIPTION(_description) MODULE_INFO(description, _description)

#endif
