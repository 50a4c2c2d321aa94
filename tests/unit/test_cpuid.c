/* The KVM-PVM CPUID masks (cpuid_mask_pvm() in src/vmm/cpuid.c) on a
 * synthetic policy with every feature bit set: exactly the instructions
 * KVM-PVM's CPL0 emulator cannot run disappear (CMPXCHG16B, the XSAVE
 * family and everything needing it: AVX, AVX2, AVX-512, AMX), leaf 0xD
 * becomes empty, and unrelated bits survive. Also cpuid_find() with and
 * without a significant index. No KVM needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/cpuid.h"

#define BIT(n) (1u << (n))

static struct kvm_cpuid2 *policy(void)
{
	static const struct {
		uint32_t function, index, flags;
	} leaves[] = {
	    {0, 0, 0},
	    {1, 0, 0},
	    {7, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
	    {7, 1, KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
	    {0xD, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
	    {0xD, 1, KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
	    {0xD, 2, KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
	    {0x80000001, 0, 0},
	};
	size_t n = sizeof(leaves) / sizeof(leaves[0]);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

	assert_non_null(c);
	c->nent = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		e->function = leaves[i].function;
		e->index = leaves[i].index;
		e->flags = leaves[i].flags;
		e->eax = e->ebx = e->ecx = e->edx = 0xffffffffu;
	}
	return c;
}

static void test_leaf1(void **state)
{
	struct kvm_cpuid2 *c = policy();
	struct kvm_cpuid_entry2 *e;

	cpuid_mask_pvm(c);
	e = cpuid_find(c, 1, 0);
	assert_non_null(e);
	assert_int_equal(e->ecx & BIT(13), 0); /* CX16 */
	assert_int_equal(e->ecx & BIT(26), 0); /* XSAVE */
	assert_int_equal(e->ecx & BIT(27), 0); /* OSXSAVE */
	assert_int_equal(e->ecx & BIT(28), 0); /* AVX */
	assert_int_equal(e->ecx & BIT(12), 0); /* FMA (VEX) */
	assert_int_equal(e->ecx & BIT(29), 0); /* F16C (VEX) */
	/* SSE3, PCLMULQDQ, SSSE3, SSE4.1/4.2, POPCNT, AES, RDRAND, hypervisor */
	assert_int_equal(e->ecx & (BIT(0) | BIT(1) | BIT(9) | BIT(19) | BIT(20) | BIT(23) |
				   BIT(25) | BIT(30) | BIT(31)),
			 BIT(0) | BIT(1) | BIT(9) | BIT(19) | BIT(20) | BIT(23) | BIT(25) |
			     BIT(30) | BIT(31));
	assert_int_equal(e->eax, 0xffffffffu);
	assert_int_equal(e->ebx, 0xffffffffu);
	assert_int_equal(e->edx, 0xffffffffu);
	free(c);
}

static void test_leaf7(void **state)
{
	struct kvm_cpuid2 *c = policy();
	struct kvm_cpuid_entry2 *e;

	cpuid_mask_pvm(c);
	e = cpuid_find(c, 7, 0);
	assert_non_null(e);
	assert_int_equal(e->ebx & BIT(5), 0);  /* AVX2 */
	assert_int_equal(e->ebx & BIT(16), 0); /* AVX512F */
	assert_int_equal(e->ebx & BIT(17), 0); /* AVX512DQ */
	assert_int_equal(e->ebx & BIT(21), 0); /* AVX512_IFMA */
	assert_int_equal(e->ebx & BIT(28), 0); /* AVX512CD */
	assert_int_equal(e->ebx & BIT(30), 0); /* AVX512BW */
	assert_int_equal(e->ebx & BIT(31), 0); /* AVX512VL */
	/* FSGSBASE, BMI1, BMI2, ERMS, RDSEED, ADX, SMAP stay. */
	assert_int_equal(e->ebx & (BIT(0) | BIT(3) | BIT(8) | BIT(9) | BIT(18) | BIT(19) | BIT(20)),
			 BIT(0) | BIT(3) | BIT(8) | BIT(9) | BIT(18) | BIT(19) | BIT(20));
	assert_int_equal(e->ecx & BIT(1), 0);  /* AVX512_VBMI */
	assert_int_equal(e->ecx & BIT(14), 0); /* AVX512_VPOPCNTDQ */
	assert_int_equal(e->edx & BIT(24), 0); /* AMX-TILE */
	assert_int_equal(e->edx & BIT(23), 0); /* AVX512_FP16 */
	assert_int_equal(e->eax, 0xffffffffu);

	e = cpuid_find(c, 7, 1);
	assert_non_null(e);
	assert_int_equal(e->eax & BIT(4), 0); /* AVX-VNNI */
	assert_int_equal(e->eax & BIT(5), 0); /* AVX512_BF16 */
	assert_int_equal(e->ebx, 0xffffffffu);

	e = cpuid_find(c, 0x80000001, 0);
	assert_non_null(e);
	assert_int_equal(e->ecx & BIT(11), 0);	   /* XOP */
	assert_int_equal(e->ecx & BIT(16), 0);	   /* FMA4 */
	assert_int_equal(e->ecx & BIT(0), BIT(0)); /* LAHF/SAHF */
	assert_int_equal(e->edx, 0xffffffffu);
	free(c);
}

static void test_leaf_d_zeroed(void **state)
{
	struct kvm_cpuid2 *c = policy();
	unsigned i, seen = 0;

	cpuid_mask_pvm(c);
	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function != 0xD)
			continue;
		seen++;
		assert_int_equal(e->eax, 0);
		assert_int_equal(e->ebx, 0);
		assert_int_equal(e->ecx, 0);
		assert_int_equal(e->edx, 0);
	}
	assert_int_equal(seen, 3);
	/* Leaf 0 (vendor, max leaf) untouched. */
	assert_int_equal(cpuid_find(c, 0, 0)->eax, 0xffffffffu);
	free(c);
}

static void test_find(void **state)
{
	struct kvm_cpuid2 *c = policy();

	/* Significant index: each subleaf is its own entry. */
	assert_ptr_equal(cpuid_find(c, 7, 0), &c->entries[2]);
	assert_ptr_equal(cpuid_find(c, 7, 1), &c->entries[3]);
	assert_null(cpuid_find(c, 7, 2));
	assert_ptr_equal(cpuid_find(c, 0xD, 2), &c->entries[6]);
	/* No significant index: any index finds the one entry. */
	assert_ptr_equal(cpuid_find(c, 1, 0), &c->entries[1]);
	assert_ptr_equal(cpuid_find(c, 1, 5), &c->entries[1]);
	assert_null(cpuid_find(c, 0x40000000, 0));
	free(c);
}

static void test_empty_policy(void **state)
{
	struct kvm_cpuid2 c = {.nent = 0};

	cpuid_mask_pvm(&c);
	assert_null(cpuid_find(&c, 1, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_leaf1),	  cmocka_unit_test(test_leaf7),
	    cmocka_unit_test(test_leaf_d_zeroed), cmocka_unit_test(test_find),
	    cmocka_unit_test(test_empty_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
