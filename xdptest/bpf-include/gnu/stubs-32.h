/*
 * Supplied by xdptest for `clang -target bpf`, found only after every system include directory
 * (-idirafter), so a real one from libc6-dev-i386 wins where it is installed.
 *
 * UAPI headers such as <linux/icmp.h> and <linux/if.h> reach glibc's <sys/socket.h>, whose
 * <gnu/stubs.h> picks stubs-32.h because the BPF target does not define __x86_64__. The file
 * only lists libc functions that are stubs on that ABI (__stub_* macros); a BPF program calls
 * no libc function, so an empty list is exact for it.
 */
