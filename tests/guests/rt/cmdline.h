/* The command line forkd passes to a test guest (`vm run --cmdline`),
 * at its fixed place in guest memory (src/vmm/boot.h: BOOT_CMDLINE_ADDR). */
#ifndef FORKD_TEST_GUEST_CMDLINE_H
#define FORKD_TEST_GUEST_CMDLINE_H

#include <stdbool.h>

#define CMDLINE_ADDR 0x20000ULL

/* True when `word` is one of the space-separated words of the command
 * line. */
bool cmdline_has(const char *word);

#endif
