/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kpatch-syscall.h - kpatch's syscall macros, for lp-build.
 *
 * KPATCH_SYSCALL_DEFINE1..6(name, ...) are lp-syscall.h's LP_SYSCALL_DEFINE1..6 (x86_64,
 * kernels >= 5.7; see lp-syscall.h for how the syscall entry points get replaced).
 * KPATCH_SYSCALL_DEFINE0, which kpatch does not have, is SYSCALL_DEFINE0.
 */
#ifndef __KPATCH_SYSCALL_H_
#define __KPATCH_SYSCALL_H_

#include "kpatch-macros.h"
#include "lp-syscall.h"

#ifdef __KERNEL__
# define KPATCH_SYSCALL_DEFINEx(x, sname, ...) LP_SYSCALL_DEFINEx(x, sname, __VA_ARGS__)
# define KPATCH_SYSCALL_DEFINE0(name) LP_SYSCALL_DEFINE0(name)
# define KPATCH_SYSCALL_DEFINE1(name, ...) LP_SYSCALL_DEFINE1(name, __VA_ARGS__)
# define KPATCH_SYSCALL_DEFINE2(name, ...) LP_SYSCALL_DEFINE2(name, __VA_ARGS__)
# define KPATCH_SYSCALL_DEFINE3(name, ...) LP_SYSCALL_DEFINE3(name, __VA_ARGS__)
# define KPATCH_SYSCALL_DEFINE4(name, ...) LP_SYSCALL_DEFINE4(name, __VA_ARGS__)
# define KPATCH_SYSCALL_DEFINE5(name, ...) LP_SYSCALL_DEFINE5(name, __VA_ARGS__)
# define KPATCH_SYSCALL_DEFINE6(name, ...) LP_SYSCALL_DEFINE6(name, __VA_ARGS__)
#endif

#endif /* __KPATCH_SYSCALL_H_ */
