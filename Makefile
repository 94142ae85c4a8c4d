# turnpolicy - top-level, non-recursive Makefile.
#
#   make            library (static + shared), the turnpolicy CLI and the
#                   turnpolicyd daemon (coturn plugin)
#   make check      installs missing Debian packages, builds, runs every test
#   make asan       the same tests under AddressSanitizer + UBSan
#   make tsan       the same tests under ThreadSanitizer
#   make bench      benchmarks in tests/bench (not part of check)
#   make fuzz       libFuzzer targets in tests/fuzz, FUZZ_SECONDS each
#                   (default 300); crashes land in build/fuzz/crashes
#   make demo       the main job end to end on throwaway servers
#   make compat     the compatibility matrix (scripts/compat.sh, root):
#                   Debian 12 here, Debian 13 and sid in debootstrap
#                   chroots cached in COMPAT_DIR (default build/compat)
#   make install    PREFIX=/usr/local DESTDIR= (library, CLI, turnpolicyd,
#                   its systemd unit in SYSTEMDDIR, examples in DATADIR,
#                   the nginx module in NGXMODDIR)
#
# Outputs go under $(BUILD) (default build/); `make asan` uses build/asan.

PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin
PCDIR   ?= $(LIBDIR)/pkgconfig
DATADIR ?= $(PREFIX)/share/turnpolicy
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
# Debian's nginx loads modules from /usr/lib/nginx/modules
NGXMODDIR ?= $(PREFIX)/lib/nginx/modules
DESTDIR ?=

BUILD   ?= build
CC      ?= cc
PKG_CONFIG ?= pkg-config

# The version is written once, in turnpolicy.h.
tp_version_part = $(shell sed -n 's/^\#define TP_VERSION_$(1) *\([0-9][0-9]*\).*/\1/p' \
                    policy/include/turnpolicy.h)
VERSION  := $(call tp_version_part,MAJOR).$(call tp_version_part,MINOR).$(call tp_version_part,PATCH)
SOMAJOR  := $(call tp_version_part,MAJOR)

DEPS_PKGS := openssl libjwt jansson libpq hiredis
DEPS_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(DEPS_PKGS) 2>/dev/null)
DEPS_LIBS   = $(shell $(PKG_CONFIG) --libs $(DEPS_PKGS) 2>/dev/null)
CMOCKA_LIBS = $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wvla \
           -Wno-unused-parameter
OPT     ?= -O2 -g
CSTD    := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
SAN     ?=
CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) $(SAN) -pthread -fPIC -fvisibility=hidden \
             -Ipolicy/include -Ipolicy/src $(DEPS_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SAN) -pthread $(LDFLAGS)

LIB_SRCS := $(wildcard policy/src/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_SRCS := $(wildcard policy/cli/*.c)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
DAEMON_SRCS := $(wildcard coturn-plugin/*.c)
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(BUILD)/obj/%.o)

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
ITEST_SRCS := $(wildcard tests/integration/*_driver.c)
ITEST_BINS := $(ITEST_SRCS:tests/integration/%.c=$(BUILD)/itests/%)
BENCH_SRCS := $(wildcard tests/bench/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/bench/%)

STATIC_LIB := $(BUILD)/lib/libturnpolicy.a
SHARED_LIB := $(BUILD)/lib/libturnpolicy.so
CLI_BIN    := $(BUILD)/bin/turnpolicy
DAEMON_BIN := $(BUILD)/bin/turnpolicyd
NGINX_MOD  := $(BUILD)/nginx/ngx_http_turnpolicy_module.so

.PHONY: all lib cli daemon nginx-module tests benches check unit asan tsan bench demo deps \
        fuzz fuzzers fuzz-targets install uninstall clean compat
.DELETE_ON_ERROR:

all: lib cli daemon nginx-module

lib: $(STATIC_LIB) $(SHARED_LIB)
cli: $(CLI_BIN)
daemon: $(DAEMON_BIN)

# nginx's own build system compiles the module (proxy-filter/build.sh keeps
# the configured nginx tree under $(BUILD)/nginx; a rebuild is quick).
nginx-module: $(STATIC_LIB)
	BUILD=$(BUILD) SAN="$(SAN)" proxy-filter/build.sh
tests: $(UNIT_BINS) $(ITEST_BINS)
benches: $(BENCH_BINS)

$(BUILD)/obj/%.o: %.c policy/include/turnpolicy.h policy/src/tp_internal.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(STATIC_LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(SHARED_LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libturnpolicy.so.$(SOMAJOR) -Wl,-z,defs \
	    -o $@.$(VERSION) $^ $(LDFLAGS_ALL) $(DEPS_LIBS)
	ln -sf libturnpolicy.so.$(VERSION) $@.$(SOMAJOR)
	ln -sf libturnpolicy.so.$(VERSION) $@

$(BUILD)/obj/policy/cli/%.o: CFLAGS_ALL += -DTP_SCHEMA_DIR='"$(DATADIR)/schema"'

$(CLI_BIN): $(CLI_OBJS) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(CLI_OBJS) $(STATIC_LIB) $(LDFLAGS_ALL) $(DEPS_LIBS)

$(DAEMON_OBJS): coturn-plugin/turnpolicyd.h

$(DAEMON_BIN): $(DAEMON_OBJS) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(DAEMON_OBJS) $(STATIC_LIB) $(LDFLAGS_ALL) $(DEPS_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(STATIC_LIB) tests/unit/tp_test.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(STATIC_LIB) \
	    $(LDFLAGS_ALL) $(TEST_LDFLAGS) $(DEPS_LIBS) $(CMOCKA_LIBS)

# Unit tests of turnpolicyd's pure parts (resp.c, commands.c, sessions.c)
# link its objects too: turnpolicyd.c again with main() renamed, and
# tpd_log replaced by the test's (-Wl,--wrap=tpd_log), as in the fuzzers.
TPD_UNIT_BINS := $(BUILD)/tests/test_resp $(BUILD)/tests/test_commands \
                 $(BUILD)/tests/test_sessions
TPD_UNIT_OBJS := $(filter-out %/turnpolicyd.o,$(DAEMON_OBJS)) \
                 $(BUILD)/obj/coturn-plugin/turnpolicyd-nomain.o

$(BUILD)/obj/coturn-plugin/turnpolicyd-nomain.o: coturn-plugin/turnpolicyd.c \
    coturn-plugin/turnpolicyd.h policy/include/turnpolicy.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Dmain=turnpolicyd_main -Wno-missing-prototypes \
	    -MMD -MP -c $< -o $@

$(TPD_UNIT_BINS): $(BUILD)/tests/%: tests/unit/%.c $(TPD_UNIT_OBJS) \
    $(STATIC_LIB) tests/unit/tp_test.h tests/unit/tpd_test.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/unit -Icoturn-plugin -o $@ $< \
	    $(TPD_UNIT_OBJS) $(STATIC_LIB) $(LDFLAGS_ALL) -Wl,--wrap=tpd_log \
	    $(DEPS_LIBS) $(CMOCKA_LIBS)

-include $(BUILD)/obj/coturn-plugin/turnpolicyd-nomain.d

# Drivers that integration scripts run against servers they started.
$(BUILD)/itests/%: tests/integration/%.c $(STATIC_LIB) tests/unit/tp_test.h \
    tests/integration/tp_itest.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(STATIC_LIB) \
	    $(LDFLAGS_ALL) $(DEPS_LIBS) $(CMOCKA_LIBS)

# test_faults interposes on the library's allocations and one OpenSSL call.
$(BUILD)/tests/test_faults: TEST_LDFLAGS = -Wl,--wrap=calloc \
    -Wl,--wrap=malloc -Wl,--wrap=realloc -Wl,--wrap=EVP_EncodeBlock

$(BUILD)/bench/%: tests/bench/%.c $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-deprecated-declarations -o $@ $< $(STATIC_LIB) \
	    $(LDFLAGS_ALL) $(DEPS_LIBS)

# libFuzzer targets (tests/fuzz): clang with coverage, ASan and UBSan on
# every object, the library and turnpolicyd's files rebuilt that way under
# $(BUILD)/fuzz.  turnpolicyd.c is linked for its helpers (tpd_escape,
# logging) with its main() renamed; the FUZZ_TPD_TARGETS replace tpd_log
# (-Wl,--wrap=tpd_log: each defines __wrap_tpd_log).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 300
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
# Coverage without trace-cmp: the comparison callbacks were ~40% of every
# target's time, and without them a run covers more in the same time
# (twice the inputs); libFuzzer still learns the strings compared with
# memcmp/strcmp, and the dictionaries name the rest.
FUZZ_COV     ?= -fsanitize=fuzzer-no-link -fno-sanitize-coverage=trace-cmp
FUZZ_CFLAGS   = $(CSTD) $(WARN) -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) \
                $(FUZZ_COV) -pthread -Ipolicy/include \
                -Ipolicy/src -Icoturn-plugin $(DEPS_CFLAGS)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_TPD_OBJS := $(DAEMON_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
# Every target is tests/fuzz/fuzz_NAME.c, built as $(FUZZ_DIR)/fuzz_NAME
# against the library; those in FUZZ_TPD_TARGETS also link turnpolicyd's
# files.  A new target joins FUZZ_TARGETS (a target with its own link
# line adds an explicit rule for $(FUZZ_DIR)/fuzz_NAME).
FUZZ_TARGETS     := resp username jwt host peer peer_export config \
                    statsdb cli_ps uri base
FUZZ_TPD_TARGETS := resp statsdb cli_ps
FUZZ_BINS     = $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

fuzzers: $(FUZZ_BINS)
# The list, for tests/integration/fuzz.sh.
fuzz-targets:
	@echo $(FUZZ_TARGETS)

$(FUZZ_DIR)/obj/%.o: %.c policy/include/turnpolicy.h policy/src/tp_internal.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_TPD_OBJS): coturn-plugin/turnpolicyd.h
$(FUZZ_DIR)/obj/coturn-plugin/turnpolicyd.o: FUZZ_CFLAGS += \
    -Dmain=turnpolicyd_main -Wno-missing-prototypes
# Whole-table walks the harnesses run per input carry no coverage signal.
$(FUZZ_DIR)/obj/coturn-plugin/sessions.o: tests/fuzz/coverage.ignore
$(FUZZ_DIR)/obj/coturn-plugin/sessions.o: FUZZ_CFLAGS += \
    -fsanitize-coverage-ignorelist=tests/fuzz/coverage.ignore

$(FUZZ_TPD_TARGETS:%=$(FUZZ_DIR)/fuzz_%): $(FUZZ_TPD_OBJS)
$(FUZZ_TPD_TARGETS:%=$(FUZZ_DIR)/fuzz_%): FUZZ_LINK = $(FUZZ_TPD_OBJS) \
    -Wl,--wrap=tpd_log

# fuzz_peer with the coturn export (slow by nature: see fuzz_peer.c).
$(FUZZ_DIR)/fuzz_peer_export: tests/fuzz/fuzz_peer.c $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DFUZZ_PEER_EXPORT -fsanitize=fuzzer -o $@ $< \
	    $(FUZZ_LIB_OBJS) $(DEPS_LIBS)

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LINK) \
	    $(FUZZ_LIB_OBJS) $(DEPS_LIBS)

# the nginx module's URI helpers: plain C, no nginx (the library's
# tp_path_safe is their one call into it)
$(FUZZ_DIR)/fuzz_uri: tests/fuzz/fuzz_uri.c proxy-filter/tp_uri.c \
                      proxy-filter/tp_uri.h $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Iproxy-filter -fsanitize=fuzzer -o $@ \
	    tests/fuzz/fuzz_uri.c proxy-filter/tp_uri.c $(FUZZ_LIB_OBJS) \
	    $(DEPS_LIBS)
# (tests/unit/test_uri.c compiles them in)
$(BUILD)/tests/test_uri: proxy-filter/tp_uri.c proxy-filter/tp_uri.h

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(DAEMON_OBJS:.o=.d) \
         $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_TPD_OBJS:.o=.d)

# Install every Debian package the project needs (idempotent; a no-op when
# everything is present).
deps:
	@scripts/install-deps.sh --quiet

check: deps
	$(MAKE) all tests
	BUILD=$(BUILD) tests/run.sh

# Unit tests only (no servers), for a quick edit-compile loop.
unit: all tests
	BUILD=$(BUILD) TP_ONLY=unit tests/run.sh

asan: deps
	$(MAKE) BUILD=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" \
	    all tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    BUILD=build/asan tests/run.sh

# The same tests under ThreadSanitizer (the store's lock-free read side and
# its background thread); not part of check.
tsan: deps
	$(MAKE) BUILD=build/tsan OPT="-O1 -g" SAN="-fsanitize=thread" all tests
	TSAN_OPTIONS=halt_on_error=1 BUILD=build/tsan tests/run.sh

# Each fuzz target for FUZZ_SECONDS, starting from the seed corpus in
# tests/fuzz/corpus_* plus what earlier runs found ($(FUZZ_DIR)/corpus_*);
# crashes, leaks and timeouts are written to $(FUZZ_DIR)/crashes.
fuzz: deps
	$(MAKE) fuzzers
	@rc=0; for t in $(FUZZ_TARGETS); do \
	    BUILD=$(BUILD) tests/fuzz/run.sh $$t $(FUZZ_SECONDS) || rc=1; \
	done; exit $$rc

bench: deps
	$(MAKE) all benches
	BUILD=$(BUILD) tests/bench/run.sh

demo: deps
	$(MAKE) all
	BUILD=$(BUILD) scripts/demo.sh

COMPAT_DIR ?= $(BUILD)/compat
compat:
	COMPAT_DIR=$(COMPAT_DIR) scripts/compat.sh

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(PCDIR)
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED_LIB).$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libturnpolicy.so.$(VERSION) \
	    $(DESTDIR)$(LIBDIR)/libturnpolicy.so.$(SOMAJOR)
	ln -sf libturnpolicy.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libturnpolicy.so
	install -m 644 policy/include/turnpolicy.h $(DESTDIR)$(INCDIR)/
	install -m 755 $(CLI_BIN) $(DAEMON_BIN) $(DESTDIR)$(BINDIR)/
	install -d $(DESTDIR)$(DATADIR)/schema $(DESTDIR)$(DATADIR)/examples \
	    $(DESTDIR)$(SYSTEMDDIR)
	install -m 644 schema/*.sql $(DESTDIR)$(DATADIR)/schema/
	install -m 644 coturn-plugin/turnpolicyd.conf.example \
	    coturn-plugin/turnserver.conf.snippet \
	    proxy-filter/nginx.conf.example $(DESTDIR)$(DATADIR)/examples/
	install -d $(DESTDIR)$(NGXMODDIR)
	install -m 644 $(BUILD)/nginx/ngx_http_turnpolicy_module.so \
	    $(DESTDIR)$(NGXMODDIR)/
	sed -e 's|/usr/local/bin/turnpolicyd|$(BINDIR)/turnpolicyd|g' \
	    coturn-plugin/turnpolicyd.service \
	    > $(DESTDIR)$(SYSTEMDDIR)/turnpolicyd.service
	chmod 644 $(DESTDIR)$(SYSTEMDDIR)/turnpolicyd.service
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCDIR@|$(INCDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@REQUIRES@|$(DEPS_PKGS)|g' \
	    policy/turnpolicy.pc.in > $(DESTDIR)$(PCDIR)/turnpolicy.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libturnpolicy.* $(DESTDIR)$(INCDIR)/turnpolicy.h \
	    $(DESTDIR)$(BINDIR)/turnpolicy $(DESTDIR)$(BINDIR)/turnpolicyd \
	    $(DESTDIR)$(PCDIR)/turnpolicy.pc \
	    $(DESTDIR)$(SYSTEMDDIR)/turnpolicyd.service \
	    $(DESTDIR)$(NGXMODDIR)/ngx_http_turnpolicy_module.so
	rm -rf $(DESTDIR)$(DATADIR)

clean:
	rm -rf $(BUILD)
