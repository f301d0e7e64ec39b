#pragma once
#include <cstdio>
#include <string>

#include "io/asio.hpp"

namespace smtplb::io {

// Appends tracking-log lines to a file or stdout ("-"). Buffered, flushed
// once a second and on exit, so logging costs no syscall per message.
class TrackingLog {
  public:
    TrackingLog(asio::any_io_executor executor, const std::string& path);
    ~TrackingLog();
    bool ok() const { return file_ != nullptr; }
    const std::string& error() const { return error_; }
    void write(const std::string& line);
    void flush();

  private:
    awaitable<void> flusher();

    asio::steady_timer timer_;
    std::FILE* file_ = nullptr;
    bool owned_ = false;
    bool dirty_ = false;
    bool flushing_ = false;
    std::string error_;
};

}  // namespace smtplb::io
