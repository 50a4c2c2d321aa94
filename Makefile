# forkd build. `make` builds build/forkd; `make test` runs the unit and VMM
# test suites; `make test-e2e` boots a real Linux guest (slow on KVM-PVM).
.DEFAULT_GOAL := all
CC      ?= gcc
BUILD   ?= build
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -Wmissing-prototypes -Wstrict-prototypes -fno-strict-aliasing \
           -D_GNU_SOURCE -Isrc -MMD -MP
LDLIBS  += -lpthread -lzstd -lz -llz4 -ljansson -lseccomp -lmnl -lnftnl -lmicrohttpd -lsqlite3 -lcurl -larchive -lcrypto
# The one definition of the version (the CLI, the daemon's /version, make install).
VERSION := $(shell cat VERSION)
CFLAGS  += -DFORKD_VERSION='"$(VERSION)"'

ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
BUILD   := build-san
endif

# Fuzzing (make fuzz-check, make fuzz FUZZ_SECS=N): the library built by
# clang with libFuzzer's coverage, ASan and UBSan; harnesses in fuzz/.
ifeq ($(FUZZ),1)
CC      := clang
CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=all -Wno-error -Wno-gnu-variable-sized-type-not-at-end
BUILD   := build-fuzz
endif

LIB_SRCS := $(wildcard src/common/*.c src/vmm/*.c src/devices/*.c src/devices/virtio/*.c \
                       src/snapshot/*.c src/fork/*.c src/isolate/*.c src/daemon/*.c src/agent/*.c)
CLI_SRCS := $(wildcard src/cli/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
# The version is compiled in where it is printed.
$(BUILD)/src/cli/main.o $(BUILD)/src/daemon/api_misc.o $(BUILD)/src/snapshot/pack.o: VERSION
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)

demo: all guests
	@scripts/demo.sh --quick

# The main job with the real guest image: image, snapshot (10-12 minutes on
# KVM-PVM hosts, once; reused), fork --keep, exec/eval in the children, kill.
demo-image: all
	@scripts/demo.sh

.PHONY: demo demo-image all clean check test unit-bins lab-prepare test-unit test-vmm test-e2e test-e2e-image guests format format-check
all: $(BUILD)/forkd

$(BUILD)/forkd: $(CLI_OBJS) $(BUILD)/libforkd.a
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libforkd.a: $(LIB_OBJS)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: tests/unit/%.c $(BUILD)/libforkd.a
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libforkd.a $(LDLIBS) -lcmocka

guests:
	$(MAKE) -C tests/guests BUILD=$(abspath $(BUILD))/guests

FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:fuzz/%.c=build-fuzz/fuzz/%)
FUZZ_SECS ?= 60
build-fuzz/fuzz/%: fuzz/%.c build-fuzz/libforkd.a
	@mkdir -p $(dir $@)
	@echo "  FUZZ $<"
	@$(CC) $(CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< build-fuzz/libforkd.a $(LDLIBS)

# Every harness on its seed corpus and then a fixed number of generated
# inputs from a fixed seed: the same run every time, for `make check`.
fuzz-check:
	@$(MAKE) -s FUZZ=1 fuzz-bins
	@fuzz/run.sh check $(FUZZ_BINS)
# Each harness for FUZZ_SECS seconds (new inputs go to build-fuzz/corpus/).
fuzz:
	@$(MAKE) -s FUZZ=1 fuzz-bins
	@fuzz/run.sh time $(FUZZ_SECS) $(FUZZ_BINS)
fuzz-bins: $(FUZZ_BINS)
.PHONY: fuzz fuzz-check fuzz-bins

unit-bins: $(UNIT_BINS)

# What the suites that run in the KVM lab need from the network or a
# compiler, done on the host first (tests/check.sh runs it when there is
# no usable /dev/kvm): the sanitizer build, the lab's kernel and
# initramfs, the e2e kernel and the guest image.
lab-prepare: all guests unit-bins
	@$(MAKE) -s SANITIZE=1 all guests unit-bins
	@scripts/kvm-lab --prepare
	@guest/kernel/fetch-kernel.sh --quiet >/dev/null
	@$(BUILD)/forkd image build --tag py

# scripts/kvm-lab itself: exit statuses, /dev/kvm inside, shared files,
# the time limit, the heartbeat (tests/lab/run.sh; boots the lab six times).
.PHONY: test-lab
test-lab: $(BUILD)/forkd
	@tests/lab/run.sh $(BUILD)

test-unit: $(UNIT_BINS)
	@tests/run-unit.sh $(UNIT_BINS)

test-vmm: $(BUILD)/forkd guests
	@tests/vmm/run.sh $(abspath $(BUILD))

test: test-unit test-vmm

# Everything CI runs, including the sanitizer build and the Linux boot.
check:
	@tests/check.sh

# The guest agent, forkd-init and `forkd image build`, on the host (tests/agent/).
.PHONY: test-agent
test-agent: $(BUILD)/forkd
	@tests/agent/run.sh $(abspath $(BUILD))

# forkd serve: REST API, restart, CLI verbs and the Python SDK (tests/daemon/).
.PHONY: test-daemon
test-daemon: $(BUILD)/forkd guests
	@tests/daemon/run.sh $(abspath $(BUILD))

# make install [PREFIX=/usr/local] [DESTDIR=...]: the binary, what `forkd
# image build` needs at run time (guest/: image scripts, init sources, agent,
# kernel fetch), the Python SDK `forkd mcp` runs (sdk/python/forkd), the docs, a forkd(1) man page made from --help (help2man),
# bash completion, the systemd unit (pointing at this PREFIX) and LICENSE.
PREFIX  ?= /usr/local
BINDIR  := $(PREFIX)/bin
DATADIR := $(PREFIX)/share/forkd
DOCDIR  := $(PREFIX)/share/doc/forkd
.PHONY: install uninstall
$(BUILD)/forkd.1: $(BUILD)/forkd packaging/man-verbs.sh
	@packaging/man-verbs.sh $(BUILD)/forkd > $(BUILD)/forkd.h2m
	@help2man --no-info --no-discard-stderr --name "fork warm Linux microVMs on /dev/kvm" \
		--version-string "$(VERSION)" --include $(BUILD)/forkd.h2m -o $@ $(BUILD)/forkd
install: $(BUILD)/forkd $(BUILD)/forkd.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(BUILD)/forkd $(DESTDIR)$(BINDIR)/forkd
	cd guest && find image init agent kernel -type f \
		\( -name '*.sh' -o -name '*.py' -o -name '*.c' -o -name '*.h' -o -name Makefile \
		   -o -name '*.cmdline' -o -name '*.config' -o -name '*.md' \) | while read -r f; do \
		mode=0644; [ -x "$$f" ] && mode=0755; \
		install -D -m $$mode "$$f" "$(DESTDIR)$(DATADIR)/guest/$$f"; done
	cd sdk/python && find forkd -type f \( -name '*.py' -o -name py.typed \) | while read -r f; do \
		install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/sdk/python/$$f"; done
	install -m 0644 README.md LICENSE docs/*.md docs/openapi.yaml $(DESTDIR)$(DOCDIR)/
	gzip -9n < $(BUILD)/forkd.1 > $(DESTDIR)$(PREFIX)/share/man/man1/forkd.1.gz
	install -m 0644 packaging/forkd.bash-completion \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/forkd
	sed -e 's|/usr/local/bin/forkd|$(BINDIR)/forkd|' -e 's|/usr/share/doc/forkd|$(DOCDIR)|' \
		packaging/forkd.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/forkd.service
# make install into a temporary DESTDIR, checked (tests/install/run.sh).
.PHONY: test-install
test-install: $(BUILD)/forkd
	@tests/install/run.sh $(BUILD)
uninstall:
	rm -rf $(DESTDIR)$(BINDIR)/forkd $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(PREFIX)/share/man/man1/forkd.1.gz \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/forkd \
		$(DESTDIR)$(PREFIX)/lib/systemd/system/forkd.service

test-e2e: $(BUILD)/forkd
	@tests/e2e/run.sh $(abspath $(BUILD))

# The guest image end to end (image, snapshot, fork, agent in every child,
# namespaces, daemon + SDK); also part of test-e2e.
test-e2e-image: $(BUILD)/forkd
	@tests/e2e/image_fork.sh $(abspath $(BUILD))

FORMAT_SRCS = $(shell find src tests fuzz -name '*.[ch]' -not -path '*/build*')
format:
	clang-format -i $(FORMAT_SRCS)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_SRCS) && echo "format-check: ok"

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d)
