// Where `etcpipe run` writes the features (and classes) of emitted flows:
// JSON Lines on stdout, or rolling .npy parts in a directory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "gpu/features.hpp"

namespace etcpipe::live {

// Per-flow classes from the model (`--model`): probs is rows × classes.
struct Predictions {
    const std::vector<std::string>* classes = nullptr;
    std::vector<float> probs;
    [[nodiscard]] bool empty() const { return classes == nullptr; }
    [[nodiscard]] size_t best(size_t r) const;  // index of row r's most likely class
};

class Sink {
  public:
    virtual ~Sink() = default;
    // One batch of emitted flows: ids and complete are per row of `out`
    // (empty when they could not be aligned with the rows).
    virtual Result<void> write(const features::Output& out, const std::vector<uint64_t>& flow_ids,
                               const std::vector<uint8_t>& complete, const Predictions& pred) = 0;
    virtual Result<void> close() { return {}; }
};

// "-": JSON Lines on stdout; else .npy parts of `rotate_flows` flows under
// the directory `output`.
[[nodiscard]] std::unique_ptr<Sink> make_sink(const std::string& output, uint32_t rotate_flows);

}  // namespace etcpipe::live
