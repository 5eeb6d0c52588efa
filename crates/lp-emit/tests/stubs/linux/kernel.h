/* Test stub of <linux/kernel.h>: only what lp-emit's generated core uses. Not the kernel. */
#ifndef _LP_STUB_LINUX_KERNEL_H
#define _LP_STUB_LINUX_KERNEL_H

#include <stddef.h>
#include <stdbool.h>

#define EPERM 1

#define __stringify_1(x...) #x
#define __stringify(x...) __stringify_1(x)
#define ___PASTE(a, b) a##b
#define __PASTE(a, b) ___PASTE(a, b)
#define __UNIQUE_ID(prefix) __PASTE(__PASTE(__UNIQUE_ID_, prefix), __COUNTER__)

#define __used __attribute__((__used__))
#define __section(s) __attribute__((__section__(s)))
#define __aligned(x) __attribute__((__aligned__(x)))
#define __init __section(".init.text")
#define __exit __section(".exit.text")

#endif
