/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lp-syscall.h - patching the body of a system call (x86_64).
 *
 * SYSCALL_DEFINEx(name, ...) { body } puts the body into `static inline long
 * __do_sys_name(...)`. Inline functions are notrace: when GCC keeps it out of line it has no
 * ftrace entry and cannot be replaced. LP_SYSCALL_DEFINEx is the kernel's own x86_64 definition
 * (arch/x86/include/asm/syscall_wrapper.h, the same from 5.7 to 6.12 and in the upstream
 * klp-build helpers) with the body renamed `__lp_do_sys_name`: the renamed body is a new
 * function, and the syscall entry points `__x64_sys_name` and `__ia32_sys_name` (ordinary
 * functions with an ftrace entry, built by the kernel's own __X64_SYS_STUBx/__IA32_SYS_STUBx,
 * so their names are always the running kernel's) change and are replaced. The syscall's
 * metadata (CONFIG_FTRACE_SYSCALLS) is emitted exactly as SYSCALL_DEFINEx does, so it does not
 * change.
 *
 * Replace SYSCALL_DEFINE1(newuname, ...) by LP_SYSCALL_DEFINE1(newuname, ...) (or kpatch's
 * KPATCH_SYSCALL_DEFINE1, or klp-build's KLP_SYSCALL_DEFINE1: the same macro). A syscall
 * without arguments needs nothing: SYSCALL_DEFINE0's body is already an ordinary function
 * (`__do_sys_name`, which the entry points alias), so LP_SYSCALL_DEFINE0 is SYSCALL_DEFINE0.
 *
 * Other architectures and kernels older than 5.7 fail to build with an #error naming the
 * macro: nothing is silently built the wrong way.
 */
#ifndef _LP_SYSCALL_H
#define _LP_SYSCALL_H

#include "lp-hooks.h"

#ifdef __KERNEL__
# include <linux/version.h>
# include <linux/syscalls.h>

# if !defined(CONFIG_X86_64)
#  define __LP_SYSCALL_DEFINEx(x, name, ...) \
	_Static_assert(0, "LP_SYSCALL_DEFINEx/KPATCH_SYSCALL_DEFINEx/KLP_SYSCALL_DEFINEx: lp-build " \
		       "supports syscall patching on x86_64 only")
# elif LINUX_VERSION_CODE < KERNEL_VERSION(5, 7, 0)
#  define __LP_SYSCALL_DEFINEx(x, name, ...) \
	_Static_assert(0, "LP_SYSCALL_DEFINEx/KPATCH_SYSCALL_DEFINEx/KLP_SYSCALL_DEFINEx: lp-build " \
		       "supports syscall patching on kernels >= 5.7 only")
# elif !defined(__X64_SYS_STUBx) || !defined(__IA32_SYS_STUBx) || !defined(__SC_LONG)
#  define __LP_SYSCALL_DEFINEx(x, name, ...) \
	_Static_assert(0, "LP_SYSCALL_DEFINEx/KPATCH_SYSCALL_DEFINEx/KLP_SYSCALL_DEFINEx: this " \
		       "kernel's syscall_wrapper.h has no __X64_SYS_STUBx/__IA32_SYS_STUBx")
# else
#  define __LP_SYSCALL_DEFINEx(x, name, ...)					\
	static long __se_sys##name(__MAP(x, __SC_LONG, __VA_ARGS__));		\
	static inline long __lp_do_sys##name(__MAP(x, __SC_DECL, __VA_ARGS__));	\
	__X64_SYS_STUBx(x, name, __VA_ARGS__)					\
	__IA32_SYS_STUBx(x, name, __VA_ARGS__)					\
	static long __se_sys##name(__MAP(x, __SC_LONG, __VA_ARGS__))		\
	{									\
		long ret = __lp_do_sys##name(__MAP(x, __SC_CAST, __VA_ARGS__));	\
		__MAP(x, __SC_TEST, __VA_ARGS__);				\
		__PROTECT(x, ret, __MAP(x, __SC_ARGS, __VA_ARGS__));		\
		return ret;							\
	}									\
	static inline long __lp_do_sys##name(__MAP(x, __SC_DECL, __VA_ARGS__))
# endif

# define LP_SYSCALL_DEFINEx(x, sname, ...)		\
	SYSCALL_METADATA(sname, x, __VA_ARGS__)		\
	__LP_SYSCALL_DEFINEx(x, sname, __VA_ARGS__)

# define LP_SYSCALL_DEFINE0(name) SYSCALL_DEFINE0(name)
# define LP_SYSCALL_DEFINE1(name, ...) LP_SYSCALL_DEFINEx(1, _##name, __VA_ARGS__)
# define LP_SYSCALL_DEFINE2(name, ...) LP_SYSCALL_DEFINEx(2, _##name, __VA_ARGS__)
# define LP_SYSCALL_DEFINE3(name, ...) LP_SYSCALL_DEFINEx(3, _##name, __VA_ARGS__)
# define LP_SYSCALL_DEFINE4(name, ...) LP_SYSCALL_DEFINEx(4, _##name, __VA_ARGS__)
# define LP_SYSCALL_DEFINE5(name, ...) LP_SYSCALL_DEFINEx(5, _##name, __VA_ARGS__)
# define LP_SYSCALL_DEFINE6(name, ...) LP_SYSCALL_DEFINEx(6, _##name, __VA_ARGS__)
#endif /* __KERNEL__ */

#endif /* _LP_SYSCALL_H */
