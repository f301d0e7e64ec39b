#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "proto/reply.hpp"

namespace smtplb::proto {

// Incremental parser for replies from a backend (untrusted input). Bounds the
// line length and the number of lines; anything that is not a well-formed
// reply puts the parser into the error state for good.
class ReplyParser {
  public:
    struct Limits {
        std::size_t max_line = 4096;
        std::size_t max_lines = 200;
    };
    ReplyParser() = default;
    explicit ReplyParser(Limits limits) : limits_(limits) {}

    void feed(std::string_view bytes) { buffer_.append(bytes); }
    // The next complete reply, or nothing (need more bytes, or error()).
    std::optional<Reply> next();
    bool error() const { return !error_.empty(); }
    // Bytes received that no complete reply has used yet.
    std::size_t buffered() const { return buffer_.size() - consumed_; }
    const std::string& error_text() const { return error_; }

  private:
    bool parse_line(std::string_view line);

    Limits limits_;
    std::string buffer_;
    std::size_t consumed_ = 0;
    std::optional<Reply> partial_;
    std::string error_;
};

}  // namespace smtplb::proto
