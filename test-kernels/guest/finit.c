// lp-finit FILE [PARAMS]: loads a module the way kmod does on a kernel that decompresses
// modules itself (CONFIG_MODULE_DECOMPRESS): finit_module(2) with MODULE_INIT_COMPRESSED_FILE,
// so a distribution's stock .ko.xz loads as shipped. Busybox's insmod would first hand the
// compressed file to the kernel without the flag ("Invalid ELF header magic") and then
// decompress it itself. Built static by xtask/src/vm.rs into the guest's /bin.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: lp-finit FILE [PARAMS]\n");
		return 2;
	}
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "lp-finit: cannot open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (syscall(SYS_finit_module, fd, argc == 3 ? argv[2] : "", MODULE_INIT_COMPRESSED_FILE)) {
		fprintf(stderr, "lp-finit: finit_module(%s, MODULE_INIT_COMPRESSED_FILE): %s\n",
			argv[1], strerror(errno));
		return 1;
	}
	return 0;
}
