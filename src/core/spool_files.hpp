#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace smtplb::core {

// The file operations the spool needs, behind an interface: the real one is
// POSIX (io::PosixSpoolFiles); tests use one that injects errors and power
// cuts at any step of the commit protocol (tests/mocks/fault_spool_files.hpp).
class SpoolFiles {
  public:
    class Writer {
      public:
        virtual ~Writer() = default;  // closes the file
        virtual std::error_code write(std::string_view bytes) = 0;
        virtual std::error_code sync() = 0;  // fsync: the content is durable
    };
    class Reader {
      public:
        virtual ~Reader() = default;
        virtual std::uint64_t size() const = 0;
        virtual bool read_at(std::uint64_t offset, std::size_t n, std::string& out) const = 0;
    };
    struct Entry {
        std::string name;
        std::uint64_t size = 0;
        std::int64_t mtime_ms = 0;  // a deferred message's next attempt (Postfix's habit)
    };

    virtual ~SpoolFiles() = default;
    // A new file; fails if it exists.
    virtual std::unique_ptr<Writer> create(const std::string& path, std::error_code& ec) = 0;
    virtual std::unique_ptr<Reader> open(const std::string& path, std::error_code& ec) = 0;
    // Overwrites one byte in place and makes it durable (fdatasync).
    virtual std::error_code rewrite_byte(const std::string& path, std::uint64_t offset,
                                         char byte) = 0;
    virtual std::error_code rename(const std::string& from, const std::string& to) = 0;
    virtual std::error_code remove(const std::string& path) = 0;
    // fsync of a directory: the names created, renamed or removed in it are durable.
    virtual std::error_code sync_dir(const std::string& dir) = 0;
    virtual std::error_code make_dir(const std::string& dir) = 0;
    // Sets a file's modification time; not made durable (it is only a hint).
    virtual std::error_code set_mtime(const std::string& path, std::int64_t epoch_ms) = 0;
    virtual std::vector<Entry> list(const std::string& dir, std::error_code& ec) = 0;
};

}  // namespace smtplb::core
