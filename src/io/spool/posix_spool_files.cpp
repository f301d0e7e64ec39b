#include "io/spool/posix_spool_files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <system_error>
#include <thread>

namespace smtplb::io {
namespace {

std::error_code last_error() {
    return {errno, std::generic_category()};
}

class FdWriter final : public core::SpoolFiles::Writer {
  public:
    explicit FdWriter(int fd) : fd_(fd) {}
    ~FdWriter() override { ::close(fd_); }
    std::error_code write(std::string_view bytes) override {
        while (!bytes.empty()) {
            ssize_t n = ::write(fd_, bytes.data(), bytes.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                return last_error();
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return {};
    }
    std::error_code sync() override { return ::fsync(fd_) == 0 ? std::error_code() : last_error(); }

  private:
    int fd_;
};

// Most messages are small: such a file is read whole with one call, and
// the reader's many small reads (record headers) are served from memory.
constexpr std::uint64_t kReadWhole = std::uint64_t{256} * 1024;

class FdReader final : public core::SpoolFiles::Reader {
  public:
    FdReader(int fd, std::uint64_t size) : fd_(fd), size_(size) {
        if (size_ <= kReadWhole) {
            std::string all;
            if (pread_into(0, static_cast<std::size_t>(size_), all)) whole_ = std::move(all);
        }
    }
    ~FdReader() override { ::close(fd_); }
    std::uint64_t size() const override { return size_; }
    bool read_at(std::uint64_t offset, std::size_t n, std::string& out) const override {
        if (whole_) {
            if (offset > whole_->size()) return false;
            out.assign(*whole_, static_cast<std::size_t>(offset), n);
            return out.size() == n;
        }
        return pread_into(offset, n, out);
    }

  private:
    bool pread_into(std::uint64_t offset, std::size_t n, std::string& out) const {
        out.resize(n);
        std::size_t got = 0;
        while (got < n) {
            ssize_t r = ::pread(fd_, out.data() + got, n - got, static_cast<off_t>(offset + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += static_cast<std::size_t>(r);
        }
        out.resize(got);
        return got == n;
    }

    int fd_;
    std::uint64_t size_;
    std::optional<std::string> whole_;
};

}  // namespace

std::unique_ptr<core::SpoolFiles::Writer> PosixSpoolFiles::create(const std::string& path,
                                                                  std::error_code& ec) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        ec = last_error();
        return nullptr;
    }
    return std::make_unique<FdWriter>(fd);
}

std::unique_ptr<core::SpoolFiles::Reader> PosixSpoolFiles::open(const std::string& path,
                                                                std::error_code& ec) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ec = last_error();
        return nullptr;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        ec = last_error();
        ::close(fd);
        return nullptr;
    }
    return std::make_unique<FdReader>(fd, static_cast<std::uint64_t>(st.st_size));
}

std::error_code PosixSpoolFiles::rewrite_byte(const std::string& path, std::uint64_t offset,
                                              char byte) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return last_error();
    std::error_code ec;
    if (::pwrite(fd, &byte, 1, static_cast<off_t>(offset)) != 1 || ::fdatasync(fd) != 0)
        ec = last_error();
    ::close(fd);
    return ec;
}

std::error_code PosixSpoolFiles::rename(const std::string& from, const std::string& to) {
    return ::rename(from.c_str(), to.c_str()) == 0 ? std::error_code() : last_error();
}

std::error_code PosixSpoolFiles::remove(const std::string& path) {
    return ::unlink(path.c_str()) == 0 ? std::error_code() : last_error();
}

std::error_code PosixSpoolFiles::sync_dir(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return last_error();
    std::error_code ec;
    if (::fsync(fd) != 0) ec = last_error();
    ::close(fd);
    return ec;
}

std::error_code PosixSpoolFiles::make_dir(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) return {};
    return last_error();
}

std::error_code PosixSpoolFiles::set_mtime(const std::string& path, std::int64_t epoch_ms) {
    struct timespec times[2];
    times[0].tv_sec = 0;
    times[0].tv_nsec = UTIME_OMIT;  // access time unchanged
    times[1].tv_sec = static_cast<time_t>(epoch_ms / 1000);
    times[1].tv_nsec = static_cast<long>(epoch_ms % 1000) * 1000000;
    return ::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0 ? std::error_code() : last_error();
}

std::vector<core::SpoolFiles::Entry> PosixSpoolFiles::list(const std::string& dir,
                                                           std::error_code& ec) {
    std::vector<Entry> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
        ec = last_error();
        return out;
    }
    std::vector<std::string> names;
    while (auto* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") names.push_back(std::move(name));
    }
    // The inodes are read in a few threads at once: after a restart they
    // are cold, and one disk read at a time is what made a million queued
    // messages slow to index (measured: 4 threads take half the time of one).
    std::vector<std::optional<Entry>> stats(names.size());
    const int dfd = ::dirfd(d);
    auto stat_range = [&](std::size_t from, std::size_t to) {
        for (auto i = from; i < to; ++i) {
            struct stat st {};
            if (::fstatat(dfd, names[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                !S_ISREG(st.st_mode))
                continue;
            stats[i] = Entry{
                std::move(names[i]), static_cast<std::uint64_t>(st.st_size),
                static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000};
        }
    };
    constexpr std::size_t kPerThread = 8192, kMaxThreads = 8;
    const auto threads = std::clamp<std::size_t>(names.size() / kPerThread, 1, kMaxThreads);
    auto range_of = [&](std::size_t t) {
        return std::pair{names.size() * t / threads, names.size() * (t + 1) / threads};
    };
    {
        std::vector<std::jthread> helpers;
        std::size_t started = 1;
        try {
            for (; started < threads; ++started) {
                auto [from, to] = range_of(started);
                helpers.emplace_back(stat_range, from, to);
            }
        } catch (const std::system_error&) {  // no thread to be had: this one does the rest
        }
        stat_range(0, range_of(0).second);
        for (auto t = started; t < threads; ++t)
            stat_range(range_of(t).first, range_of(t).second);
    }
    ::closedir(d);
    out.reserve(names.size());
    for (auto& entry : stats)
        if (entry) out.push_back(std::move(*entry));
    return out;
}

}  // namespace smtplb::io
