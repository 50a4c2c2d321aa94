/* User mode (CPL3) for test guests. On KVM-PVM hosts guest code at CPL0 is
 * emulated and code at CPL3 runs natively, so a guest that does heavy work
 * runs it through user_call().
 *
 * user_init() replaces the boot GDT with one laid out as Linux's (KVM-PVM
 * expects guest user segments where Linux has them) plus a 64-bit TSS, and
 * sets the U bit throughout the boot identity map (CR3), so user code sees
 * the whole image. Kernel selectors stay those of the boot GDT (code 0x10,
 * data 0x18), so an IDT built before or after is valid.
 *
 * How user code gets back to CPL0, as measured on KVM-PVM: exceptions
 * (#GP, #UD, #PF...) and int3/into go through the IDT as on hardware;
 * `int N` for any other N raises #UD instead of taking the gate; SYSCALL
 * jumps to LSTAR but stays at CPL3. user_call() therefore comes back with
 * int3 (a DPL3 gate that works on every host). */
#ifndef FORKD_TEST_GUEST_USER_H
#define FORKD_TEST_GUEST_USER_H

#include <stdint.h>

#define GDT_KERNEL_CS 0x10
#define GDT_KERNEL_DS 0x18
#define GDT_USER32_CS (0x20 | 3)
#define GDT_USER_DS   (0x28 | 3)
#define GDT_USER_CS   (0x30 | 3)
#define GDT_TSS	      0x40

typedef uint64_t (*user_fn)(uint64_t arg);

/* Call once, after idt_init() and before user_call(). Takes over vector 3
 * (#BP): an int3 at CPL0 afterwards is reported as unexpected. */
void user_init(void);

/* Run fn(arg) at CPL3 with interrupts off, on a user stack, and return its
 * result. */
uint64_t user_call(user_fn fn, uint64_t arg);

/* From an exception handler for a fault taken at CPL3: abandon the user
 * code and make user_call() return `ret`. Does not return. */
__attribute__((noreturn)) void user_abort(uint64_t ret);

#endif
