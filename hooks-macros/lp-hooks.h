/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lp-hooks.h - annotations a livepatch source patch can use with lp-build.
 *
 * Every macro here emits a small data entry into a section that lp-build's differ reads from
 * the PATCHED object and never copies into the patch module: the entries are metadata, not
 * code. The formats are part of lp-build's contracts (docs/CONTRACTS.md, "hooks-macros ->
 * lp-diff"); hooks-macros/README.md describes the macros, the ordering and failure semantics.
 *
 * Use each macro at file scope, followed by a semicolon:
 *
 *	static int my_pre_patch(struct klp_object *obj) { ... }
 *	LP_PRE_PATCH_CALLBACK(my_pre_patch);
 *
 * A callback attaches to the object (vmlinux or the module) whose source file holds the macro.
 * Several callbacks of one kind may be declared; they run in declaration order.
 *
 * The header compiles in the kernel (__KERNEL__: it includes <linux/livepatch.h>) and in plain
 * userspace test builds (it only forward-declares struct klp_object).
 */
#ifndef _LP_HOOKS_H
#define _LP_HOOKS_H

#ifdef __KERNEL__
# include <linux/livepatch.h>
#else
struct klp_object;
#endif

/*
 * Internal helpers. __LP_UNIQUE(prefix) makes a new identifier per use (so several entries of
 * one kind can live in one file); __LP_ENTRY(section) is the attribute set of every entry:
 * kept although unreferenced, in the named section, 8-byte aligned (entries are 8 or 16 bytes,
 * so the section is a packed array of them).
 */
#define __LP_PASTE_(a, b) a##b
#define __LP_PASTE(a, b) __LP_PASTE_(a, b)
#define __LP_UNIQUE(prefix) __LP_PASTE(__LP_PASTE(prefix, __COUNTER__), _)
#define __LP_ENTRY(section) \
	__attribute__((__used__, __section__(section), __aligned__(8)))

/*
 * Compile-time check that fn has the given function pointer type. It accepts a function or a
 * function pointer and fails to compile with a message naming the expected type otherwise.
 */
#define __LP_CHECK_TYPE(fn, type, what) \
	_Static_assert(__builtin_types_compatible_p(__typeof__(&*(fn)), type), \
		       #fn " must be " what)

/* Entry of .lp.callbacks.pre_patch: 16 bytes, order = __LINE__ of the declaration. */
struct lp_pre_patch_callback {
	int (*fn)(struct klp_object *obj);
	unsigned long order;
};

/* Entry of .lp.callbacks.{post_patch,pre_unpatch,post_unpatch}: 16 bytes. */
struct lp_obj_callback {
	void (*fn)(struct klp_object *obj);
	unsigned long order;
};

/* Entry of .lp.hooks.{load,unload}: 16 bytes. */
struct lp_hook {
	void (*fn)(void);
	unsigned long order;
};

/* Entry of .lp.states: 16 bytes. */
struct lp_state {
	unsigned long id;
	unsigned int version;
	unsigned int reserved;
};

/*
 * LP_PRE_PATCH_CALLBACK(fn) - run int fn(struct klp_object *obj) before the object is patched.
 * A non-zero return aborts enabling the patch (or loading the patched module); the post_unpatch
 * callbacks declared before it in the same object run first, in reverse order (README.md).
 */
#define LP_PRE_PATCH_CALLBACK(_fn) \
	__LP_CHECK_TYPE(_fn, int (*)(struct klp_object *), \
			"int fn(struct klp_object *) for a pre_patch callback"); \
	static struct lp_pre_patch_callback __LP_UNIQUE(__lp_pre_patch_) \
		__LP_ENTRY(".lp.callbacks.pre_patch") = { .fn = (_fn), .order = __LINE__ };

/* LP_POST_PATCH_CALLBACK(fn) - run void fn(struct klp_object *obj) once the object is patched. */
#define LP_POST_PATCH_CALLBACK(_fn) \
	__LP_CHECK_TYPE(_fn, void (*)(struct klp_object *), \
			"void fn(struct klp_object *) for a post_patch callback"); \
	static struct lp_obj_callback __LP_UNIQUE(__lp_post_patch_) \
		__LP_ENTRY(".lp.callbacks.post_patch") = { .fn = (_fn), .order = __LINE__ };

/* LP_PRE_UNPATCH_CALLBACK(fn) - run void fn(struct klp_object *obj) before it is unpatched. */
#define LP_PRE_UNPATCH_CALLBACK(_fn) \
	__LP_CHECK_TYPE(_fn, void (*)(struct klp_object *), \
			"void fn(struct klp_object *) for a pre_unpatch callback"); \
	static struct lp_obj_callback __LP_UNIQUE(__lp_pre_unpatch_) \
		__LP_ENTRY(".lp.callbacks.pre_unpatch") = { .fn = (_fn), .order = __LINE__ };

/* LP_POST_UNPATCH_CALLBACK(fn) - run void fn(struct klp_object *obj) once it is unpatched. */
#define LP_POST_UNPATCH_CALLBACK(_fn) \
	__LP_CHECK_TYPE(_fn, void (*)(struct klp_object *), \
			"void fn(struct klp_object *) for a post_unpatch callback"); \
	static struct lp_obj_callback __LP_UNIQUE(__lp_post_unpatch_) \
		__LP_ENTRY(".lp.callbacks.post_unpatch") = { .fn = (_fn), .order = __LINE__ };

/*
 * LP_LOAD_HOOK(fn) - run void fn(void) once the object is patched (a post_patch callback that
 * does not take the object). LP_UNLOAD_HOOK(fn) - run void fn(void) before it is unpatched (a
 * pre_unpatch callback). The kpatch names KPATCH_LOAD_HOOK and KPATCH_UNLOAD_HOOK are the same.
 */
#define LP_LOAD_HOOK(_fn) \
	__LP_CHECK_TYPE(_fn, void (*)(void), "void fn(void) for a load hook"); \
	static struct lp_hook __LP_UNIQUE(__lp_load_hook_) \
		__LP_ENTRY(".lp.hooks.load") = { .fn = (_fn), .order = __LINE__ };

#define LP_UNLOAD_HOOK(_fn) \
	__LP_CHECK_TYPE(_fn, void (*)(void), "void fn(void) for an unload hook"); \
	static struct lp_hook __LP_UNIQUE(__lp_unload_hook_) \
		__LP_ENTRY(".lp.hooks.unload") = { .fn = (_fn), .order = __LINE__ };

/*
 * LP_STATE(id, version) - the patch carries system state `id` (non-zero, unsigned long) at
 * `version` (unsigned int): it becomes a struct klp_state of the klp_patch. A replacing patch
 * must carry every state already installed, at a version >= the installed one.
 */
#define LP_STATE(_id, _version) \
	_Static_assert((_id) != 0, "LP_STATE: the state id must not be 0"); \
	static struct lp_state __LP_UNIQUE(__lp_state_) \
		__LP_ENTRY(".lp.states") = { .id = (_id), .version = (_version), .reserved = 0 };

/*
 * LP_IGNORE_FUNCTION(fn) - never include fn in the patch, even when it changed (for example a
 * function that only changed because a WARN's line number moved).
 */
#define LP_IGNORE_FUNCTION(_fn) \
	static void *__LP_UNIQUE(__lp_ignore_function_) \
		__LP_ENTRY(".lp.ignore.functions") = (void *)(_fn);

/*
 * LP_IGNORE_SECTION("name") - never include the section called "name" in the patch (a section
 * that changes as a side effect and is not a function).
 */
#define LP_IGNORE_SECTION(_name) \
	static const char *__LP_UNIQUE(__lp_ignore_section_) \
		__LP_ENTRY(".lp.ignore.sections") = (_name);

/*
 * The same macros under the names of the upstream kernel's klp-build (livepatch_helpers.h):
 * KLP_PRE_PATCH_CALLBACK, KLP_POST_PATCH_CALLBACK, KLP_PRE_UNPATCH_CALLBACK,
 * KLP_POST_UNPATCH_CALLBACK. Include this header after <linux/livepatch_helpers.h> if a patch
 * includes both: these definitions replace the upstream ones, which write a section lp-build
 * does not read.
 */
#undef KLP_PRE_PATCH_CALLBACK
#undef KLP_POST_PATCH_CALLBACK
#undef KLP_PRE_UNPATCH_CALLBACK
#undef KLP_POST_UNPATCH_CALLBACK
#define KLP_PRE_PATCH_CALLBACK(_fn) LP_PRE_PATCH_CALLBACK(_fn)
#define KLP_POST_PATCH_CALLBACK(_fn) LP_POST_PATCH_CALLBACK(_fn)
#define KLP_PRE_UNPATCH_CALLBACK(_fn) LP_PRE_UNPATCH_CALLBACK(_fn)
#define KLP_POST_UNPATCH_CALLBACK(_fn) LP_POST_UNPATCH_CALLBACK(_fn)

/*
 * The same macros under kpatch's names (kpatch-macros.h includes this header, so kpatch
 * patches build unmodified). Unlike kpatch, several callbacks of one kind may be declared.
 */
#define KPATCH_PRE_PATCH_CALLBACK(_fn) LP_PRE_PATCH_CALLBACK(_fn)
#define KPATCH_POST_PATCH_CALLBACK(_fn) LP_POST_PATCH_CALLBACK(_fn)
#define KPATCH_PRE_UNPATCH_CALLBACK(_fn) LP_PRE_UNPATCH_CALLBACK(_fn)
#define KPATCH_POST_UNPATCH_CALLBACK(_fn) LP_POST_UNPATCH_CALLBACK(_fn)
#define KPATCH_LOAD_HOOK(_fn) LP_LOAD_HOOK(_fn)
#define KPATCH_UNLOAD_HOOK(_fn) LP_UNLOAD_HOOK(_fn)
#define KPATCH_IGNORE_FUNCTION(_fn) LP_IGNORE_FUNCTION(_fn)
#define KPATCH_IGNORE_SECTION(_name) LP_IGNORE_SECTION(_name)

/*
 * KPATCH_FORCE_UNSAFE(fn) - kpatch's per-function override of the consistency check. The
 * kernel's livepatch has no such thing (only a whole-transition force, from sysfs), so a patch
 * using it fails to build rather than silently losing the override.
 */
#define KPATCH_FORCE_UNSAFE(_fn) \
	_Static_assert(0, "KPATCH_FORCE_UNSAFE(" #_fn "): livepatch has no per-function force; " \
		       "remove it and make the change safe to apply")

/*
 * KPATCH_STATIC_CALL(name), KLP_STATIC_CALL(name) - call through a static call's current
 * target instead of its trampoline, for static call keys defined in a module (see the
 * differ's message).
 */
#define KPATCH_STATIC_CALL(_name) \
	((__typeof__(STATIC_CALL_TRAMP(_name)) *)(STATIC_CALL_KEY(_name).func))
#undef KLP_STATIC_CALL
#define KLP_STATIC_CALL(_name) KPATCH_STATIC_CALL(_name)

#ifdef __KERNEL__
# include <linux/jiffies.h>
# include <linux/printk.h>
/*
 * KPATCH_PRINTK(fmt, ...), KPATCH_PRINTK_DEFERRED(fmt, ...) - printk() on a path of its own, so
 * that printk's __cold attribute does not make the surrounding code cold (which would move
 * unchanged code around and make it look changed).
 */
# define KPATCH_PRINTK(_fmt, ...) \
	({ \
		if (jiffies) \
			printk(_fmt, ##__VA_ARGS__); \
	})
# define KPATCH_PRINTK_DEFERRED(_fmt, ...) \
	({ \
		if (jiffies) \
			printk_deferred(_fmt, ##__VA_ARGS__); \
	})
#endif /* __KERNEL__ */

#endif /* _LP_HOOKS_H */
