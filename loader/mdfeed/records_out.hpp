// Decoded records as JSON Lines, one object per record:
//   {"ts":NS,"src":"ADDR:PORT","dst":"ADDR:PORT","seq":N,"template":ID,"name":"NAME","fields":{…}}
// (ts: capture or receive time in ns since the epoch, left out with --no-ts;
// seq: the STEP MsgSeqNum or UDP preamble sequence number, when there is one).
// Writes are buffered and checked: a full disk or a closed pipe is an error,
// never a silent loss. Stream problems go to stderr, the first few in full.
#pragma once

#include <cstdio>
#include <string>

#include "common/result.hpp"
#include "mdfeed/feed.hpp"

namespace etcpipe::md {

class OutputFile {
  public:
    // "-" is stdout. An existing file is replaced.
    [[nodiscard]] static Result<OutputFile> open(const std::string& path);
    OutputFile(OutputFile&& o) noexcept;
    OutputFile& operator=(OutputFile&&) = delete;
    OutputFile(const OutputFile&) = delete;
    ~OutputFile();

    void write(std::string_view bytes);   // buffered; the first error is kept
    [[nodiscard]] Result<void> flush();   // also reports an earlier write error
    [[nodiscard]] const std::string& path() const { return path_; }

  private:
    OutputFile() = default;
    std::FILE* f_ = nullptr;
    bool own_ = false;
    int err_ = 0;
    std::string path_, buf_;
};

struct JsonSinkOptions {
    bool with_ts = true;
    size_t problems_shown = 20;  // problems printed in full; the rest only counted
};

class JsonRecordSink : public RecordSink {
  public:
    JsonRecordSink(OutputFile& out, const JsonSinkOptions& o) : out_(out), o_(o) {}
    void on_record(const fast::MessageView& m, const RecordContext& ctx) override;
    void on_problem(const RecordContext& ctx, const std::string& what) override;
    [[nodiscard]] uint64_t records() const { return records_; }
    [[nodiscard]] uint64_t problems() const { return problems_; }

  private:
    OutputFile& out_;
    JsonSinkOptions o_;
    std::string line_;
    uint64_t records_ = 0, problems_ = 0;
};

}  // namespace etcpipe::md
