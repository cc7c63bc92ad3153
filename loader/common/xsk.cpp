#include "common/xsk.hpp"

#include <linux/ethtool.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <xdp/xsk.h>

#include "common/fd.hpp"

namespace etcpipe {

struct XskSocket::Impl {
    XskOptions opts;
    void* area = nullptr;
    size_t area_bytes = 0;
    xsk_umem* umem = nullptr;
    xsk_socket* xsk = nullptr;
    xsk_ring_prod fill{};
    xsk_ring_cons comp{};
    xsk_ring_cons rx{};
    // Frames read from RX but not yet returned to the fill ring.
    std::vector<uint64_t> held;
    uint32_t rx_idx = 0;   // next RX descriptor to read within the peeked span
    uint32_t rx_left = 0;  // peeked but unread
    uint32_t rx_peeked = 0;

    ~Impl() {
        if (xsk) xsk_socket__delete(xsk);
        if (umem) xsk_umem__delete(umem);
        if (area) munmap(area, area_bytes);
    }
};

XskSocket::~XskSocket() = default;

int XskSocket::fd() const { return xsk_socket__fd(impl_->xsk); }

Result<std::unique_ptr<XskSocket>> XskSocket::create(const std::string& iface, uint32_t queue,
                                                     const XskOptions& o) {
    const std::string what = iface + " queue " + std::to_string(queue);
    if (o.frame_size != 2048 && o.frame_size != 4096)
        return Error{ErrorKind::Usage, EINVAL, what, "create AF_XDP socket",
                     "UMEM frame size must be 2048 or 4096", {}};
    if (o.ring_size == 0 || (o.ring_size & (o.ring_size - 1)) || o.frames < o.ring_size)
        return Error{ErrorKind::Usage, EINVAL, what, "create AF_XDP socket",
                     "ring size must be a power of two and frames ≥ ring size", {}};
    if (o.meta.size && uint64_t{o.meta.magic_offset} + sizeof(uint32_t) > o.meta.size)
        return Error{ErrorKind::Usage, EINVAL, what, "create AF_XDP socket",
                     "metadata magic must lie within the metadata", {}};
    std::unique_ptr<XskSocket> s(new XskSocket());
    s->impl_ = std::make_unique<Impl>();
    s->queue_ = queue;
    Impl& im = *s->impl_;
    im.opts = o;
    im.area_bytes = size_t{o.frames} * o.frame_size;
    im.area = mmap(nullptr, im.area_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (im.area == MAP_FAILED) {
        im.area = nullptr;
        return make_error(ErrorKind::Io, errno, what, "allocate UMEM");
    }
    xsk_umem_config uc{};
    uc.fill_size = o.ring_size;
    uc.comp_size = o.ring_size;
    uc.frame_size = o.frame_size;
    uc.frame_headroom = 0;
    uc.flags = 0;
    int err = xsk_umem__create(&im.umem, im.area, im.area_bytes, &im.fill, &im.comp, &uc);
    if (err) {
        im.umem = nullptr;
        return make_error(ErrorKind::Bpf, -err, what, "register UMEM",
                          err == -EPERM ? "needs CAP_NET_RAW and CAP_IPC_LOCK (run as root)" : "");
    }
    xsk_socket_config sc{};
    sc.rx_size = o.ring_size;
    sc.tx_size = 0;
    sc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
    const bool try_zc = o.bind != XskBind::Copy;
    if (try_zc) {
        sc.bind_flags = XDP_USE_NEED_WAKEUP | XDP_ZEROCOPY;
        err = xsk_socket__create(&im.xsk, iface.c_str(), queue, im.umem, &im.rx, nullptr, &sc);
        if (!err) s->zero_copy_ = true;
    }
    if (!try_zc || (err && o.bind == XskBind::Auto)) {
        sc.bind_flags = XDP_USE_NEED_WAKEUP | XDP_COPY;
        err = xsk_socket__create(&im.xsk, iface.c_str(), queue, im.umem, &im.rx, nullptr, &sc);
    }
    if (err) {
        im.xsk = nullptr;
        std::string hint;
        if (err == -EOPNOTSUPP || err == -EINVAL)
            hint = o.bind == XskBind::ZeroCopy ? "the driver has no zero-copy AF_XDP: use --bind copy"
                                               : "does the queue exist? see `ethtool -l " + iface + "`";
        else if (err == -EBUSY)
            hint = "another AF_XDP socket is bound to this queue";
        return make_error(ErrorKind::Bpf, -err, what, "bind AF_XDP socket", hint);
    }
    // Hand the kernel every frame the fill ring can hold: frames are copied
    // out as they arrive and return at once, so the fill ring stays full.
    uint32_t idx = 0;
    const uint32_t n = xsk_ring_prod__reserve(&im.fill, o.ring_size, &idx);
    for (uint32_t i = 0; i < n; ++i)
        *xsk_ring_prod__fill_addr(&im.fill, idx + i) = uint64_t{i} * o.frame_size;
    xsk_ring_prod__submit(&im.fill, n);
    return s;
}

bool XskSocket::next(Frame& f) {
    Impl& im = *impl_;
    if (im.rx_left == 0) {
        if (im.rx_peeked) {
            xsk_ring_cons__release(&im.rx, im.rx_peeked);
            im.rx_peeked = 0;
        }
        im.rx_left = xsk_ring_cons__peek(&im.rx, 64, &im.rx_idx);
        im.rx_peeked = im.rx_left;
        if (im.rx_left == 0) return false;
    }
    const xdp_desc* d = xsk_ring_cons__rx_desc(&im.rx, im.rx_idx++);
    --im.rx_left;
    const uint64_t addr = xsk_umem__add_offset_to_addr(d->addr);
    auto* base = static_cast<uint8_t*>(im.area);
    f.data = {base + addr, d->len};
    f.meta = {};
    // The metadata sits right in front of the packet; check it fits in the
    // frame's headroom and carries the program's magic.
    const XskMetaFormat& mf = im.opts.meta;
    const uint64_t frame_start = addr - (addr % im.opts.frame_size);
    if (mf.size && addr - frame_start >= mf.size) {
        const uint8_t* m = base + addr - mf.size;
        uint32_t magic;
        std::memcpy(&magic, m + mf.magic_offset, sizeof magic);
        if (magic == mf.magic) f.meta = {m, mf.size};
    }
    im.held.push_back(xsk_umem__extract_addr(d->addr) - (xsk_umem__extract_addr(d->addr) % im.opts.frame_size));
    return true;
}

void XskSocket::release() {
    Impl& im = *impl_;
    if (im.rx_peeked && im.rx_left == 0) {
        xsk_ring_cons__release(&im.rx, im.rx_peeked);
        im.rx_peeked = 0;
    }
    if (im.held.empty()) return;
    uint32_t idx = 0;
    const uint32_t n = xsk_ring_prod__reserve(&im.fill, static_cast<uint32_t>(im.held.size()), &idx);
    for (uint32_t i = 0; i < n; ++i) *xsk_ring_prod__fill_addr(&im.fill, idx + i) = im.held[i];
    xsk_ring_prod__submit(&im.fill, n);
    im.held.erase(im.held.begin(), im.held.begin() + n);
    wakeup_if_needed();
}

void XskSocket::wakeup_if_needed() {
    Impl& im = *impl_;
    if (xsk_ring_prod__needs_wakeup(&im.fill))
        (void)recvfrom(fd(), nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
}

Result<XskStats> XskSocket::stats() const {
    xdp_statistics st{};
    socklen_t len = sizeof(st);
    if (getsockopt(fd(), SOL_XDP, XDP_STATISTICS, &st, &len))
        return make_error(ErrorKind::Bpf, errno, "AF_XDP queue " + std::to_string(queue_),
                          "read XDP_STATISTICS");
    XskStats s;
    s.rx_dropped = st.rx_dropped;
    s.rx_ring_full = st.rx_ring_full;
    s.fill_ring_empty = st.rx_fill_ring_empty_descs;
    s.invalid_descs = st.rx_invalid_descs;
    return s;
}

uint32_t rx_queue_count(const std::string& iface) {
    UniqueFd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (sock.get() < 0) return 1;
    ethtool_channels ch{};
    ch.cmd = ETHTOOL_GCHANNELS;
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
    ifr.ifr_data = reinterpret_cast<char*>(&ch);
    if (ioctl(sock.get(), SIOCETHTOOL, &ifr)) return 1;
    const uint32_t n = ch.rx_count + ch.combined_count;
    return n ? n : 1;
}

}  // namespace etcpipe
