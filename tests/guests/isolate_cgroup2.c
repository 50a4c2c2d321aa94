/* The memory hog again, under the name of the cgroup v2 case
 * (tests/vmm/cases/isolate_cgroup2.sh): see isolate_mem_hog.c. */
#include "isolate_mem_hog.c"
