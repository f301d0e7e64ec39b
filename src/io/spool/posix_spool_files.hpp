#pragma once
#include "core/spool_files.hpp"

namespace smtplb::io {

// The spool's file operations on a POSIX file system. Every method is a few
// system calls with no shared state, so any thread may call them.
class PosixSpoolFiles final : public core::SpoolFiles {
  public:
    std::unique_ptr<Writer> create(const std::string& path, std::error_code& ec) override;
    std::unique_ptr<Reader> open(const std::string& path, std::error_code& ec) override;
    std::error_code rewrite_byte(const std::string& path, std::uint64_t offset, char byte) override;
    std::error_code rename(const std::string& from, const std::string& to) override;
    std::error_code remove(const std::string& path) override;
    std::error_code sync_dir(const std::string& dir) override;
    std::error_code make_dir(const std::string& dir) override;
    std::error_code set_mtime(const std::string& path, std::int64_t epoch_ms) override;
    std::vector<Entry> list(const std::string& dir, std::error_code& ec) override;
};

}  // namespace smtplb::io
