# etcpipe — the only entry point. `make` builds everything; `make test`,
# `make demo`, `make bench` install what is missing first. V=1 for verbose.
.DELETE_ON_ERROR:
.SECONDARY:
.DEFAULT_GOAL := all
SHELL := /bin/bash
# Parallel by default (one job per core) unless the caller chose -j.
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS += -j$(shell nproc)
endif

# make SANITIZE=1 [test]: the whole build with AddressSanitizer and UBSan
# (any UB report aborts) in build-asan/, CPU only; its tests run under them.
ifeq ($(SANITIZE),1)
BUILD     ?= build-asan
CXXFLAGS  ?= -O1 -g -fno-omit-frame-pointer
CXXFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined
# GCC 12's flow analysis under the sanitizers reports std::function inside
# std::regex as maybe-uninitialized (a false positive the plain build lacks).
CXXFLAGS  += -Wno-maybe-uninitialized
LDFLAGS   += -fsanitize=address,undefined
NVCC      := /nonexistent/nvcc
# Leaks are not what this build looks for (libxdp and protobuf keep some
# allocations to exit): off, so a leak report does not fail the CLI tests.
export ASAN_OPTIONS ?= detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1
endif
BUILD     ?= build
CXX       ?= g++
CLANG     ?= clang
BPFTOOL   ?= bpftool
NVCC      ?= /usr/local/cuda/bin/nvcc
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null)

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

# ---- dependencies --------------------------------------------------------
# The stamp is rebuilt (install-deps.sh runs) when any required tool or
# header is missing, or when the script itself changed.
DEPS_STAMP := $(BUILD)/.deps-ok
FUZZER_RT := $(wildcard /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a)
DEPS_PRESENT := $(shell command -v $(CLANG) >/dev/null && command -v $(BPFTOOL) >/dev/null && \
	command -v pkg-config >/dev/null && command -v ip >/dev/null && \
	test -f /usr/include/xdp/libxdp.h -a -f /usr/include/bpf/libbpf.h -a \
	     -f /usr/include/CLI/CLI.hpp -a -f /usr/include/gtest/gtest.h -a \
	     -f /usr/include/$(MULTIARCH)/asm/types.h -a -f /usr/include/onnx/onnx_pb.h -a \
	     -f /usr/include/google/protobuf/message.h -a -f /usr/include/$(MULTIARCH)/cblas.h -a \
	     -f /usr/include/tinyxml2.h -a -n "$(FUZZER_RT)" -a \
	     -f /usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz && echo yes)

$(DEPS_STAMP): scripts/install-deps.sh
	$(Q)mkdir -p $(BUILD)
ifneq ($(DEPS_PRESENT),yes)
	$(Q)bash scripts/install-deps.sh
endif
	$(Q)touch $@

.PHONY: deps
deps:
	$(Q)bash scripts/install-deps.sh
	$(Q)mkdir -p $(BUILD) && touch $(DEPS_STAMP)

# ---- BPF -----------------------------------------------------------------
BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
BPF_SKELS  := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.skel.h,$(BPF_SRCS))
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 \
	-Wall -Wextra -Werror -Wshadow -Wimplicit-fallthrough -Wno-unused-parameter \
	-Iinclude -Ibpf/include -idirafter /usr/include/$(MULTIARCH)

$(BUILD)/bpf/%.tmp.o: bpf/%.bpf.c $(DEPS_STAMP)
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MD -MP -MF $(@:.o=.d) -c $< -o $@

$(BUILD)/bpf/%.bpf.o: $(BUILD)/bpf/%.tmp.o
	$(call msg,LINK,$@)
	$(Q)$(BPFTOOL) gen object $@ $<

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@ 2> $@.log || { cat $@.log; exit 1; }
	$(Q)grep -v 'skipping unrecognized data section' $@.log >&2 || true

# bpf/NAME.bpf.o → the built object, so commands name it beside its source:
# `ip link set dev IFACE xdp obj bpf/flowmgr.bpf.o sec xdp`,
# `etcpipe check --target nfp bpf/anova.bpf.o bpf/anova_f64.bpf.o`. Git-ignored.
BPF_LINKS := $(patsubst bpf/%.bpf.c,bpf/%.bpf.o,$(BPF_SRCS))
bpf/%.bpf.o: $(BUILD)/bpf/%.bpf.o
	$(Q)ln -sfn $(abspath $<) $@

# Small BPF programs the tests use as fixtures (e.g. one NFP-rule violation
# each for `etcpipe check`): compiled only, never skeletons.
TEST_BPF_SRCS := $(wildcard tests/bpf_progs/*.bpf.c)
TEST_BPF_OBJS := $(patsubst tests/bpf_progs/%.bpf.c,$(BUILD)/tests/bpf_progs/%.bpf.o,$(TEST_BPF_SRCS))

$(BUILD)/tests/bpf_progs/%.bpf.o: tests/bpf_progs/%.bpf.c $(DEPS_STAMP)
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -Wno-error -c $< -o $@

# ---- C++ -----------------------------------------------------------------
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor \
	-Wcast-qual -Wformat=2 -Wimplicit-fallthrough -Werror -pthread
# -MD, not -MMD: the skeletons come in through -isystem, and a changed BPF
# program must rebuild what embeds it.
CPPFLAGS += -I. -Iinclude -Iloader -isystem $(BUILD)/bpf -MD -MP
# libxdp has no run-time version call: record the one we built against.
LIBXDP_VERSION := $(shell pkg-config --modversion libxdp 2>/dev/null || echo unknown)
GIT_REV := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/obj/loader/cli/cmd_version.o: CPPFLAGS += -DETCPIPE_LIBXDP_VERSION='"$(LIBXDP_VERSION)"' \
	-DETCPIPE_GIT_REV='"$(GIT_REV)"'
LDLIBS   += -lxdp -lbpf -lelf -lz -pthread
# Inference (gpu/onnx_model.cpp, gpu/infer_cpu.cpp): ONNX protobuf; OpenBLAS
# is dlopen'ed by the first CPU backend (infer_cpu.cpp says why), not linked.
CPPFLAGS += -DONNX_ML=1 -DONNX_NAMESPACE=onnx
LDLIBS   += -lonnx_proto -lprotobuf -ldl
# Market data: FAST template XML.
LDLIBS   += -ltinyxml2

LIB_SRCS  := $(filter-out loader/cli/main.cpp,$(wildcard loader/*/*.cpp))
LIB_OBJS  := $(patsubst %.cpp,$(BUILD)/obj/%.o,$(LIB_SRCS))
LIB       := $(BUILD)/libetcpipe.a
CLI_BIN   := $(BUILD)/etcpipe

TEST_SRCS := $(wildcard tests/common/*.cpp tests/unit/*.cpp tests/bpf/*.cpp tests/reference/*.cpp tests/integration/*.cpp)
TEST_OBJS := $(patsubst %.cpp,$(BUILD)/obj/%.o,$(TEST_SRCS))
TEST_BIN  := $(BUILD)/etcpipe-tests

BENCH_SRCS := $(wildcard tests/bench/bench_*.cpp)
BENCH_BINS := $(patsubst tests/bench/%.cpp,$(BUILD)/%,$(BENCH_SRCS))

# ---- CUDA (optional) -----------------------------------------------------
# The GPU extractor and inference backend build into a plugin,
# $(BUILD)/libetcpipe-cuda.so, that the binaries dlopen on first GPU use
# (gpu/cuda_plugin.hpp): they link no CUDA library themselves, and export
# their symbols (-rdynamic) for the plugin to use.
CU_SRCS := $(wildcard gpu/*.cu)
CPU_TWIN_SRCS := $(wildcard gpu/*.cpp)
LIB_OBJS += $(patsubst %.cpp,$(BUILD)/obj/%.o,$(CPU_TWIN_SRCS))
LDFLAGS  += -rdynamic
ifneq ($(wildcard $(NVCC)),)
HAVE_CUDA   := 1
CU_OBJS     := $(patsubst %.cu,$(BUILD)/obj/%.o,$(CU_SRCS))
CUDA_PLUGIN := $(BUILD)/libetcpipe-cuda.so
CPPFLAGS    += -DETCPIPE_HAVE_CUDA=1
# SASS for Turing..Hopper plus PTX, so any newer GPU JITs it.
NVCCFLAGS ?= -O2 -std=c++20 -gencode arch=compute_75,code=sm_75 -gencode arch=compute_80,code=sm_80 \
	-gencode arch=compute_90,code=[sm_90,compute_90] -Xcompiler -Wall,-Wextra
NVCCFLAGS += -Xcompiler -fPIC -DETCPIPE_HAVE_CUDA=1
else
HAVE_CUDA   :=
CU_OBJS     :=
CUDA_PLUGIN :=
endif

# Skeletons order-only: they must exist first; which file includes which is
# tracked by the .d files, so a changed program rebuilds only its users.
$(BUILD)/obj/%.o: %.cpp $(DEPS_STAMP) | $(BPF_SKELS)
	$(call msg,CXX,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cu $(DEPS_STAMP)
	$(call msg,NVCC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(NVCC) $(NVCCFLAGS) -I. -Iinclude -Iloader -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# --whole-archive: every library symbol is in the binary, so the plugin
# finds what it uses whichever commands the binary itself calls.
LINK_LIB = -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive

$(CLI_BIN): $(BUILD)/obj/loader/cli/main.o $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CXX) $(CXXFLAGS) $(LDFLAGS) $< $(LINK_LIB) -o $@ $(LDLIBS)

$(TEST_BIN): $(TEST_OBJS) $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CXX) $(CXXFLAGS) $(LDFLAGS) $(TEST_OBJS) $(LINK_LIB) -o $@ -lgtest -lgtest_main $(LDLIBS)

$(BUILD)/bench_%: $(BUILD)/obj/tests/bench/bench_%.o $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CXX) $(CXXFLAGS) $(LDFLAGS) $< $(LINK_LIB) -o $@ $(LDLIBS)

# The CUDA libraries are the plugin's alone (rpath: found without
# LD_LIBRARY_PATH where the toolkit is installed).
$(CUDA_PLUGIN): $(CU_OBJS)
	$(call msg,LD,$@)
	$(Q)$(CXX) -shared -Wl,-z,now $^ -o $@ -L/usr/local/cuda/lib64 -Wl,-rpath,/usr/local/cuda/lib64 \
		-lcudart -lcublasLt

# ---- fuzzing (clang libFuzzer + ASan/UBSan) -------------------------------
# One target per parser that reads outside input; each builds from only the
# sources it needs (FUZZ_LIB_<name>, FUZZ_LDLIBS_<name>), so none pulls in
# CUDA or more of libbpf than it uses.
FUZZ_SRCS     := $(wildcard tests/fuzz/fuzz_*.cpp)
FUZZ_BINS     := $(patsubst tests/fuzz/%.cpp,$(BUILD)/%,$(FUZZ_SRCS))
FUZZ_MD_SRCS  := $(wildcard loader/mdfeed/fast*.cpp) loader/mdfeed/framing.cpp \
	loader/mdfeed/packet.cpp loader/mdfeed/reassembler.cpp loader/mdfeed/feed.cpp
FUZZ_LIB_fast   := $(FUZZ_MD_SRCS)
FUZZ_LIB_feed   := $(FUZZ_MD_SRCS)
FUZZ_LDLIBS_fast := -ltinyxml2
FUZZ_LDLIBS_feed := -ltinyxml2
FUZZ_LIB_pcap   := loader/common/pcap.cpp
FUZZ_LIB_series := loader/anova/series.cpp
# CPU inference only (the plugin host built without ETCPIPE_HAVE_CUDA never
# dlopens); the target defines its own no-op log so libbpf stays out.
FUZZ_LIB_onnx   := gpu/onnx_model.cpp gpu/infer_cpu.cpp gpu/features_common.cpp \
	gpu/features_cpu.cpp gpu/cuda_plugin_host.cpp
FUZZ_LDLIBS_onnx := -lonnx_proto -lprotobuf -ldl -pthread
FUZZ_LIB_nfp    := $(wildcard loader/nfp/*.cpp) loader/common/log.cpp
FUZZ_LDLIBS_nfp := -lxdp -lbpf -lelf -lz -pthread
FUZZ_CXXFLAGS := -std=c++20 -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=undefined -I. -Iinclude -Iloader -isystem $(BUILD)/bpf \
	-DONNX_ML=1 -DONNX_NAMESPACE=onnx -MMD -MP
FUZZ_SECONDS  ?= 15

$(BUILD)/fuzzobj/%.o: %.cpp $(DEPS_STAMP)
	$(call msg,FUZZCXX,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG)++ $(FUZZ_CXXFLAGS) -c $< -o $@

# (No literal % in the second expansion: the pattern's stem would replace it.)
fuzz_objs_of = $(patsubst %.cpp,$(BUILD)/fuzzobj/%.o,$(FUZZ_LIB_$(1)))
.SECONDEXPANSION:
$(BUILD)/fuzz_%: $(BUILD)/fuzzobj/tests/fuzz/fuzz_%.o $$(call fuzz_objs_of,$$*)
	$(call msg,LD,$@)
	$(Q)$(CLANG)++ -fsanitize=fuzzer,address,undefined $^ -o $@ $(FUZZ_LDLIBS_$*)

# Each fuzz target for FUZZ_SECONDS (make test: 15 s, one at a time; make
# fuzz: 600 s, one per core), seeded from real data where there is some.
FUZZ_SEEDS_pcap   := testdata/ndpi/pcap
FUZZ_SEEDS_series := testdata/anova
FUZZ_SEEDS_onnx   := models
FUZZ_SEEDS_nfp    := $(BUILD)/bpf,$(BUILD)/tests/bpf_progs
FUZZ_PLAN = $(foreach f,$(FUZZ_BINS),$(f):$(FUZZ_SEEDS_$(patsubst fuzz_%,%,$(notdir $(f)))))
FUZZ_JOBS ?= 1
.PHONY: fuzz fuzz-run
fuzz-run: $(FUZZ_BINS) | $(BPF_OBJS) $(TEST_BPF_OBJS)
	$(Q)bash scripts/fuzz-run.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_PLAN)
fuzz:
	$(Q)$(MAKE) fuzz-run FUZZ_SECONDS=600 FUZZ_JOBS=$(shell nproc)

.PHONY: all cuda-notice
all: cuda-notice $(BPF_OBJS) $(BPF_LINKS) $(TEST_BPF_OBJS) $(CLI_BIN) $(TEST_BIN) $(BENCH_BINS) $(CUDA_PLUGIN) $(FUZZ_BINS)

cuda-notice:
ifeq ($(HAVE_CUDA),)
	@echo "notice: $(NVCC) not found: building CPU only (no CUDA plugin; --device gpu will say so)"
endif

# ---- data, tests, demo, bench --------------------------------------------
NDPI_CACHE := testdata/ndpi/.complete
$(NDPI_CACHE): scripts/fetch-testdata.sh $(DEPS_STAMP)
	$(Q)bash scripts/fetch-testdata.sh

.PHONY: testdata test demo bench clean gpu-check model nicnn-model pkttag-model check-layers
testdata: $(NDPI_CACHE)

# More real captures from Debian 12 source packages (wireshark, tcpflow,
# dnscap, python-dpkt; EXTRA_SOURCES=all adds tcpdump's dissector cases),
# labelled with Debian's ndpiReader as nDPI's tests/do.sh does:
# testdata/extra/SOURCE/{pcap,result} (git-ignored; see testdata/PROVENANCE.md).
# Not a prerequisite of any other target.
EXTRA_SOURCES ?=
.PHONY: extra-testdata
extra-testdata:
	$(Q)bash scripts/fetch-extra-captures.sh $(EXTRA_SOURCES)

# Retrains the shipped classifier (scripts/train.py) from nDPI's captures and
# the extra Debian sources (fetched first, cached: make extra-testdata):
# models/etc_app.{onnx,pt,md,confusion.svg}. About 15 minutes on 2 cores.
model: $(CLI_BIN) $(NDPI_CACHE) extra-testdata
	$(Q)/usr/bin/python3 scripts/train.py --etcpipe $(CLI_BIN) --work $(BUILD)/train --out models/etc_app

# Retrains the in-NIC digit CNN (scripts/train_nicnn.py) on python3-sklearn's
# digits: include/etcpipe/nicnn_model.h, models/nicnn.md, models/nicnn_float.pt.
nicnn-model: $(DEPS_STAMP)
	$(Q)/usr/bin/python3 scripts/train_nicnn.py

# Retrains the per-packet tagger (scripts/train_pkttag.py) with the flow
# model's classes and split: include/etcpipe/pkttag_model.h, models/pkttag.md.
pkttag-model: $(CLI_BIN) $(NDPI_CACHE)
	$(Q)/usr/bin/python3 scripts/train_pkttag.py --etcpipe $(CLI_BIN) --work $(BUILD)/pkttag-train \
		--flow-work $(BUILD)/train

# The include rules between loader/common, the applications, gpu/ and
# bpf/include (scripts/check-layers.sh says which).
check-layers:
	$(Q)bash scripts/check-layers.sh

test: check-layers all $(NDPI_CACHE)
	$(Q)cd $(CURDIR) && ETCPIPE_BUILD=$(BUILD) $(TEST_BIN) $(GTEST_ARGS)
	$(Q)$(MAKE) --no-print-directory fuzz-run

demo: all $(NDPI_CACHE)
	$(Q)bash scripts/demo.sh $(BUILD)

bench: all $(NDPI_CACHE)
	$(Q)for b in $(BENCH_BINS); do $$b || exit 1; done

# The GPU-vs-CPU byte-identity tests alone (they skip without a device).
gpu-check: all $(NDPI_CACHE)
	$(Q)ETCPIPE_BUILD=$(BUILD) $(TEST_BIN) --gtest_filter='Gpu*:*Gpu*'

clean:
	rm -rf $(BUILD) $(BPF_LINKS)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
