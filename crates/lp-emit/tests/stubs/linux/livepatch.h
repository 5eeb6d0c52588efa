/* Test stub of <linux/livepatch.h>: the structures with the kernel's field names, types and
 * order (external fields first, as in include/linux/livepatch.h; the internal fields are
 * left out). Not the kernel. */
#ifndef _LP_STUB_LINUX_LIVEPATCH_H
#define _LP_STUB_LINUX_LIVEPATCH_H

#include <linux/module.h>

struct klp_func {
	/* external */
	const char *old_name;
	void *new_func;
	unsigned long old_sympos;

	/* internal (abridged) */
	void *old_func;
	unsigned long old_size, new_size;
	bool nop;
	bool patched;
	bool transition;
};

struct klp_object;

struct klp_callbacks {
	int (*pre_patch)(struct klp_object *obj);
	void (*post_patch)(struct klp_object *obj);
	void (*pre_unpatch)(struct klp_object *obj);
	void (*post_unpatch)(struct klp_object *obj);
	bool post_unpatch_enabled;
};

struct klp_object {
	/* external */
	const char *name;
	struct klp_func *funcs;
	struct klp_callbacks callbacks;

	/* internal (abridged) */
	struct module *mod;
	bool dynamic;
	bool patched;
};

struct klp_state {
	unsigned long id;
	unsigned int version;
	void *data;
};

struct klp_patch {
	/* external */
	struct module *mod;
	struct klp_object *objs;
	struct klp_state *states;
	bool replace;

	/* internal (abridged) */
	bool enabled;
	bool forced;
};

int klp_enable_patch(struct klp_patch *);

#endif
