#pragma once
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "io/asio.hpp"

namespace smtplb::io {

// Appends tracking-log lines to a file or stdout ("-"). Buffered, flushed
// once a second and on exit, so logging costs no syscall per message.
// Shared by configuration generations after a reload (two buffers on one
// file could split a line), so always held by a shared_ptr.
class TrackingLog : public std::enable_shared_from_this<TrackingLog> {
  public:
    TrackingLog(const asio::any_io_executor& executor, const std::string& path);
    ~TrackingLog();
    bool ok() const { return file_ != nullptr; }
    const std::string& error() const { return error_; }
    const std::string& path() const { return path_; }
    void write(const std::string& line);
    void flush();

  private:
    awaitable<void> flusher();

    asio::steady_timer timer_;  // on the balancer's own loop
    std::mutex mutex_;
    std::FILE* file_ = nullptr;
    bool owned_ = false;
    bool dirty_ = false;
    bool flushing_ = false;
    std::string error_;
    std::string path_;
};

}  // namespace smtplb::io
