/* The command line forkd passes to a test guest (`vm run --cmdline`),
 * at its fixed place in guest memory (src/vmm/boot.h: BOOT_CMDLINE_ADDR). */
#ifndef FORKD_TEST_GUEST_CMDLINE_H
#define FORKD_TEST_GUEST_CMDLINE_H

#include <stdbool.h>
#include <stdint.h>

#define CMDLINE_ADDR 0x20000ULL

/* True when `word` is one of the space-separated words of the command
 * line. */
bool cmdline_has(const char *word);

/* The decimal value of the word "KEY=N" on the command line (key given
 * with its '='), or dflt when there is none or N is not a number. */
uint64_t cmdline_u64(const char *key, uint64_t dflt);

#endif
