/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kpatch-macros.h - kpatch's annotation header, for lp-build.
 *
 * kpatch patches `#include "kpatch-macros.h"`; with lp-build's hooks-macros directory on the
 * include path they build unmodified: every KPATCH_* macro is defined by lp-hooks.h under
 * lp-build's section formats (see README.md for what differs from kpatch).
 */
#ifndef __KPATCH_MACROS_H_
#define __KPATCH_MACROS_H_

#include "lp-hooks.h"

#endif /* __KPATCH_MACROS_H_ */
