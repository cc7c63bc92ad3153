#!/usr/bin/env bash
# Installs every Debian package etcpipe needs to build, test, demo and bench.
# Idempotent: packages already present are not touched, apt runs only when
# something is missing. CUDA is not a package here: /usr/local/cuda is used
# when present (see Makefile), otherwise the build is CPU only.
set -euo pipefail

packages=(
    build-essential g++ make pkg-config git ca-certificates
    clang llvm                      # BPF compiler (-target bpf)
    libclang-rt-14-dev              # libFuzzer and the sanitizer runtimes (make fuzz)
    libbpf-dev libxdp-dev bpftool   # libbpf, libxdp, skeleton generator
    xdp-tools                       # xdp-loader, for interop checks
    libelf-dev zlib1g-dev
    linux-libc-dev gcc-multilib     # uapi headers incl. asm/types.h for BPF
    libcli11-dev                    # CLI
    libgtest-dev                    # tests
    iproute2                        # ip netns / veth in integration tests
    xz-utils dpkg-dev               # fetch-testdata.sh (apt source)
    libonnx-dev libprotobuf-dev     # inference: ONNX model parsing
    libopenblas-dev libopenblas0-pthread  # inference: CPU sgemm (pthread: training ~14x faster)
    python3-torch python3-onnx python3-numpy  # training (scripts/train.py) and the reference oracle
    python3-sklearn                 # the 8x8 digits of the in-NIC CNN (scripts/train_nicnn.py, tests)
    libtinyxml2-dev                 # market data: FAST template XML
    librsvg2-bin                    # training report: SVG confusion matrix → PNG for viewing
    libndpi-bin                     # make bench: ndpiReader (nDPI 4.2), the peer of classify
)

missing=()
for p in "${packages[@]}"; do
    [[ "$p" == \#* ]] && continue
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}; run as root (or: sudo $0)" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
