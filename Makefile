# sstshim — top-level build.  `make` builds libsst (static + shared) into build/;
# `make test` runs every test; `make asan` runs the unit tests under ASan+UBSan; `make fuzz`
# fuzzes the engine's input paths under libFuzzer (docs/fuzzing.md).
# Files are found by wildcard so adding a module or a test never needs an edit here.

CC      ?= cc
BUILD   ?= build
V       ?= 0
Q       := $(if $(filter 1,$(V)),,@)

PKGS    := libevent libsodium check
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs libevent libsodium 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

OPT     ?= -O2
SAN     ?=
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wno-unused-parameter -g $(OPT) $(SAN) -fPIC -fvisibility=hidden \
           -MMD -MP -Icore -Itests/sim $(PKG_CFLAGS)
LDFLAGS += $(SAN)
LDLIBS  += $(PKG_LIBS) -lpthread -lm

# The engine (sans-I/O) is core/*.c; drivers that touch sockets, files or the
# clock live in core/io/*.c.  Both go into libsst.
ENGINE_SRC := $(wildcard core/*.c)
IO_SRC     := $(wildcard core/io/*.c)
LIB_SRC    := $(ENGINE_SRC) $(IO_SRC)
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
SIM_SRC    := $(wildcard tests/sim/*.c)
SIM_OBJ    := $(SIM_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC   := $(wildcard tests/tools/*.c)
TOOL_BIN   := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
EXAMPLE_SRC:= $(wildcard examples/*.c)
EXAMPLE_BIN:= $(EXAMPLE_SRC:examples/%.c=$(BUILD)/%)

# sstd and sstctl: their mains plus build/libsstd.a made of the other helper/*.c.
HELPER_MAINS   := helper/sstd.c helper/sstctl.c
HELPER_LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out $(HELPER_MAINS),$(wildcard helper/*.c)))
LIBSSTD_A      := $(BUILD)/libsstd.a
HELPER_BIN     := $(BUILD)/sstd $(BUILD)/sstctl

LIBSST_A   := $(BUILD)/libsst.a
LIBSST_SO  := $(BUILD)/libsst.so
LIBSIM_A   := $(BUILD)/libsstsim.a

# The LD_PRELOAD shim: every shim/*.c; its hook-free parts also link into test_shim_* tests.
SHIM_SRC   := $(wildcard shim/*.c)
SHIM_OBJ   := $(SHIM_SRC:%.c=$(BUILD)/obj/%.o)
SHIM_PURE_OBJ := $(BUILD)/obj/shim/config.o $(BUILD)/obj/shim/log.o $(BUILD)/obj/shim/negcache.o \
                 $(BUILD)/obj/shim/tcpinfo_map.o
LIBSHIM_SO := $(BUILD)/libsstshim.so

.PHONY: all lib tests test unit integration asan deps demo bench clean check-engine fuzz
# Keep object files that pattern rules treat as intermediate (faster rebuilds, no "rm" noise).
.SECONDARY:
all: lib tests $(EXAMPLE_BIN)
lib: $(LIBSST_A) $(LIBSST_SO) $(LIBSHIM_SO)
tests: $(UNIT_BIN) $(TOOL_BIN) $(HELPER_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIBSST_A): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBSST_SO): $(LIB_OBJ)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libsst is linked in privately (--exclude-libs): the preloaded library exports only its hooks,
# so it can never clash with a program's own symbols (or a program's own libsst).
$(LIBSHIM_SO): $(SHIM_OBJ) $(LIBSST_A)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) -shared $(LDFLAGS) -Wl,--exclude-libs,ALL -o $@ $(SHIM_OBJ) $(LIBSST_A) $(LDLIBS) -ldl

$(BUILD)/tests/test_shim_%: $(BUILD)/obj/tests/unit/test_shim_%.o $(SHIM_PURE_OBJ) $(LIBSIM_A) $(LIBSST_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SHIM_PURE_OBJ) $(LIBSIM_A) $(LIBSST_A) $(CHECK_LIBS) $(LDLIBS)

$(LIBSSTD_A): $(HELPER_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(HELPER_BIN): $(BUILD)/%: $(BUILD)/obj/helper/%.o $(LIBSSTD_A) $(LIBSST_A)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBSSTD_A) $(LIBSST_A) $(LDLIBS)

$(BUILD)/tests/test_helper_%: $(BUILD)/obj/tests/unit/test_helper_%.o $(LIBSSTD_A) $(LIBSIM_A) $(LIBSST_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBSSTD_A) $(LIBSIM_A) $(LIBSST_A) $(CHECK_LIBS) $(LDLIBS)

$(LIBSIM_A): $(SIM_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBSIM_A) $(LIBSST_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBSIM_A) $(LIBSST_A) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(LIBSIM_A) $(LIBSST_A)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBSIM_A) $(LIBSST_A) $(LDLIBS)

$(BUILD)/%: $(BUILD)/obj/examples/%.o $(LIBSST_A)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBSST_A) $(LDLIBS)

# Installs the Debian packages the project needs when any is missing.
deps:
	$(Q)scripts/deps.sh install

$(BUILD)/.deps-ok: scripts/deps.sh
	$(Q)scripts/deps.sh ensure
	@mkdir -p $(BUILD) && touch $@

# The engine must stay sans-I/O: no sockets, threads or clock reads in core/*.c.
check-engine:
	$(Q)scripts/check-engine.sh $(ENGINE_SRC)

test: $(BUILD)/.deps-ok
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory check-engine
	$(Q)BUILD=$(BUILD) scripts/run-tests.sh

unit: $(BUILD)/.deps-ok
	$(Q)$(MAKE) --no-print-directory tests
	$(Q)BUILD=$(BUILD) SST_TESTS=unit scripts/run-tests.sh

asan: $(BUILD)/.deps-ok
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" tests
	$(Q)BUILD=build-asan SST_TESTS=unit ASAN_OPTIONS=detect_leaks=1 \
	    UBSAN_OPTIONS=print_stacktrace=1 scripts/run-tests.sh

demo: $(BUILD)/.deps-ok
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) scripts/demo.sh

bench: $(BUILD)/.deps-ok
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) scripts/bench.sh

# Coverage-guided fuzzing of tests/fuzz's targets under libFuzzer (clang) with ASan + UBSan, into
# build-fuzz/; FUZZ_SECONDS per target (default 300).  Not part of `make test`, which runs the same
# targets on their seeds and deterministic mutations (test_fuzz).  docs/fuzzing.md.
fuzz: $(BUILD)/.deps-ok
	$(Q)scripts/fuzz.sh

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) build-asan -name '*.d' 2>/dev/null)
