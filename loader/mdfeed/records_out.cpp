#include "mdfeed/records_out.hpp"

#include <cerrno>
#include <cinttypes>
#include <cstring>

namespace etcpipe::md {

Result<OutputFile> OutputFile::open(const std::string& path) {
    OutputFile o;
    o.path_ = path;
    if (path == "-" || path.empty()) {
        o.f_ = stdout;
        o.path_ = "stdout";
        return o;
    }
    o.f_ = std::fopen(path.c_str(), "w");
    if (!o.f_) return make_error(ErrorKind::Io, errno, path, "open output");
    o.own_ = true;
    return o;
}

OutputFile::OutputFile(OutputFile&& o) noexcept
    : f_(std::exchange(o.f_, nullptr)), own_(o.own_), err_(o.err_), path_(std::move(o.path_)),
      buf_(std::move(o.buf_)) {}

OutputFile::~OutputFile() {
    (void)flush();
    if (own_ && f_) std::fclose(f_);
}

void OutputFile::write(std::string_view bytes) {
    buf_.append(bytes);
    if (buf_.size() >= (64u << 10)) (void)flush();
}

Result<void> OutputFile::flush() {
    if (!f_) return {};
    if (!buf_.empty() && err_ == 0) {
        if (std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size()) err_ = errno ? errno : EIO;
    }
    buf_.clear();
    if (err_ == 0 && std::fflush(f_) != 0) err_ = errno ? errno : EIO;
    if (err_ != 0) return make_error(ErrorKind::Io, err_, path_, "write records");
    return {};
}

void JsonRecordSink::on_record(const fast::MessageView& m, const RecordContext& ctx) {
    ++records_;
    line_.clear();
    line_ += '{';
    char num[32];
    if (o_.with_ts && ctx.ts_ns != 0) {
        std::snprintf(num, sizeof(num), "\"ts\":%" PRIu64 ",", ctx.ts_ns);
        line_ += num;
    }
    line_ += "\"src\":\"";
    line_ += ctx.src;
    line_ += "\",";
    if (!ctx.dst.empty()) {
        line_ += "\"dst\":\"";
        line_ += ctx.dst;
        line_ += "\",";
    }
    if (ctx.has_seq) {
        std::snprintf(num, sizeof(num), "\"seq\":%" PRIu64 ",", ctx.seq);
        line_ += num;
    }
    fast::append_json(m, line_);
    line_ += "}\n";
    out_.write(line_);
}

void JsonRecordSink::on_problem(const RecordContext& ctx, const std::string& what) {
    if (problems_++ < o_.problems_shown)
        std::fprintf(stderr, "md: %.*s > %.*s: %s\n", static_cast<int>(ctx.src.size()),
                     ctx.src.data(), static_cast<int>(ctx.dst.size()), ctx.dst.data(), what.c_str());
    else if (problems_ == o_.problems_shown + 1)
        std::fprintf(stderr, "md: more problems follow; only counted (see the counters)\n");
}

}  // namespace etcpipe::md
