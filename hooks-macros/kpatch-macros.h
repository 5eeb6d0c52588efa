/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kpatch-macros.h - kpatch's annotation header, for lp-build.
 *
 * kpatch patches `#include "kpatch-macros.h"`; with lp-build's hooks headers on the include
 * path they build unmodified. Every name kpatch's header defines is here with kpatch's meaning
 * (see README.md for the table): the KPATCH_* callbacks, load/unload hooks and ignores are
 * lp-hooks.h's macros under lp-build's section formats; KPATCH_PRINTK, KPATCH_PRINTK_DEFERRED
 * and KPATCH_STATIC_CALL are kpatch's; kpatch's callback types (patch_object,
 * kpatch_pre_patch_call_t, ..., struct kpatch_pre_patch_callback, ...) are declared; and, as
 * in kpatch, kpatch-syscall.h is included. KPATCH_FORCE_UNSAFE fails to build (lp-hooks.h).
 */
#ifndef __KPATCH_MACROS_H_
#define __KPATCH_MACROS_H_

#include "lp-hooks.h"

/* kpatch's types, for patches that name them. */
typedef struct klp_object patch_object;
typedef int (*kpatch_pre_patch_call_t)(patch_object *obj);
typedef void (*kpatch_post_patch_call_t)(patch_object *obj);
typedef void (*kpatch_pre_unpatch_call_t)(patch_object *obj);
typedef void (*kpatch_post_unpatch_call_t)(patch_object *obj);
typedef void (*kpatch_loadcall_t)(void);
typedef void (*kpatch_unloadcall_t)(void);

struct kpatch_pre_patch_callback {
	kpatch_pre_patch_call_t fn;
	char *objname;
};
struct kpatch_post_patch_callback {
	kpatch_post_patch_call_t fn;
	char *objname;
};
struct kpatch_pre_unpatch_callback {
	kpatch_pre_unpatch_call_t fn;
	char *objname;
};
struct kpatch_post_unpatch_callback {
	kpatch_post_unpatch_call_t fn;
	char *objname;
};

#include "kpatch-syscall.h"

#endif /* __KPATCH_MACROS_H_ */
