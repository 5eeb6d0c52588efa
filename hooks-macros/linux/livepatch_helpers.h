/* SPDX-License-Identifier: GPL-2.0 */
/*
 * <linux/livepatch_helpers.h> for kernels that do not ship it (before 6.19), from lp-build.
 *
 * lp-build puts the directory holding this file after the kernel's own include directories
 * (-idirafter), so a kernel that ships the header uses its own; lp-build reads the sections
 * the kernel's header writes too (.discard.klp_callback_ptrs). Here the names of the upstream
 * header are lp-build's macros with the same meaning:
 *
 *	KLP_PRE_PATCH_CALLBACK, KLP_POST_PATCH_CALLBACK, KLP_PRE_UNPATCH_CALLBACK,
 *	KLP_POST_UNPATCH_CALLBACK	lp-hooks.h's LP_*_CALLBACK
 *	KLP_STATIC_CALL(name)		call through a static call's current target
 *	KLP_SYSCALL_DEFINE0..6		lp-syscall.h's LP_SYSCALL_DEFINE0..6 (x86_64)
 *	KLP_OBJNAME			the object the file belongs to: the module's name, or
 *					vmlinux
 */
#ifndef _LINUX_LIVEPATCH_HELPERS_H
#define _LINUX_LIVEPATCH_HELPERS_H

#include "../lp-hooks.h"
#include "../lp-syscall.h"

#ifdef MODULE
# define KLP_OBJNAME __KBUILD_MODNAME
#else
# define KLP_OBJNAME vmlinux
#endif

#ifdef __KERNEL__
# define KLP_SYSCALL_DEFINEx(x, sname, ...) LP_SYSCALL_DEFINEx(x, sname, __VA_ARGS__)
# define KLP_SYSCALL_DEFINE0(name) LP_SYSCALL_DEFINE0(name)
# define KLP_SYSCALL_DEFINE1(name, ...) LP_SYSCALL_DEFINE1(name, __VA_ARGS__)
# define KLP_SYSCALL_DEFINE2(name, ...) LP_SYSCALL_DEFINE2(name, __VA_ARGS__)
# define KLP_SYSCALL_DEFINE3(name, ...) LP_SYSCALL_DEFINE3(name, __VA_ARGS__)
# define KLP_SYSCALL_DEFINE4(name, ...) LP_SYSCALL_DEFINE4(name, __VA_ARGS__)
# define KLP_SYSCALL_DEFINE5(name, ...) LP_SYSCALL_DEFINE5(name, __VA_ARGS__)
# define KLP_SYSCALL_DEFINE6(name, ...) LP_SYSCALL_DEFINE6(name, __VA_ARGS__)
#endif

#endif /* _LINUX_LIVEPATCH_HELPERS_H */
