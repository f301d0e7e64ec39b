#pragma once
#include <map>
#include <optional>
#include <string>

#include "core/spool_files.hpp"

namespace smtplb::testing {

// An in-memory file system that models what survives a power cut: file
// content only as of its last fsync, directory entries only as of the
// directory's last fsync. Operations can be made to fail (EIO, ENOSPC), and
// the "process" can die after a given number of operations.
class FaultSpoolFiles final : public core::SpoolFiles {
  public:
    // After `n` more mutating operations every operation fails (the process died).
    void crash_after(int n) { crash_budget_ = n; }
    // The next operation named `op` ("write", "sync", "rename", "sync_dir",
    // "create", "rewrite") fails with `error`.
    void fail_next(const std::string& op, std::errc error) { failures_[op] = error; }
    // Power cut: everything not made durable is gone; the process restarts.
    void power_cut() {
        dirs_ = durable_dirs_;
        for (auto& [id, inode] : inodes_)
            inode.content = inode.durable;
        crash_budget_.reset();
        failures_.clear();
    }
    int operations() const { return operations_; }
    bool exists(const std::string& path) const {
        auto [dir, name] = split(path);
        auto it = dirs_.find(dir);
        return it != dirs_.end() && it->second.count(name);
    }
    std::string content(const std::string& path) const {
        auto [dir, name] = split(path);
        return inodes_.at(dirs_.at(dir).at(name)).content;
    }
    void overwrite(const std::string& path, std::string content) {
        auto [dir, name] = split(path);
        auto& inode = inodes_.at(dirs_.at(dir).at(name));
        inode.content = inode.durable = std::move(content);
    }

    std::unique_ptr<Writer> create(const std::string& path, std::error_code& ec) override {
        if ((ec = step("create"))) return nullptr;
        auto [dir, name] = split(path);
        auto d = dirs_.find(dir);
        if (d == dirs_.end() || d->second.count(name)) {
            ec = std::make_error_code(d == dirs_.end() ? std::errc::no_such_file_or_directory
                                                       : std::errc::file_exists);
            return nullptr;
        }
        int id = ++next_inode_;
        inodes_[id] = {};
        d->second[name] = id;
        return std::make_unique<FakeWriter>(*this, id);
    }
    std::unique_ptr<Reader> open(const std::string& path, std::error_code& ec) override {
        auto [dir, name] = split(path);
        auto d = dirs_.find(dir);
        if (d == dirs_.end() || !d->second.count(name)) {
            ec = std::make_error_code(std::errc::no_such_file_or_directory);
            return nullptr;
        }
        return std::make_unique<FakeReader>(inodes_.at(d->second.at(name)).content);
    }
    std::error_code rewrite_byte(const std::string& path, std::uint64_t offset,
                                 char byte) override {
        if (auto ec = step("rewrite")) return ec;
        auto [dir, name] = split(path);
        auto& inode = inodes_.at(dirs_.at(dir).at(name));
        if (offset >= inode.content.size())
            return std::make_error_code(std::errc::invalid_argument);
        inode.content[offset] = byte;
        inode.durable = inode.content;
        return {};
    }
    std::error_code rename(const std::string& from, const std::string& to) override {
        if (auto ec = step("rename")) return ec;
        auto [fd, fn] = split(from);
        auto [td, tn] = split(to);
        auto& src = dirs_.at(fd);
        auto it = src.find(fn);
        if (it == src.end()) return std::make_error_code(std::errc::no_such_file_or_directory);
        int id = it->second;
        src.erase(it);
        dirs_.at(td)[tn] = id;
        return {};
    }
    std::error_code remove(const std::string& path) override {
        if (auto ec = step("remove")) return ec;
        auto [dir, name] = split(path);
        dirs_.at(dir).erase(name);
        return {};
    }
    std::error_code sync_dir(const std::string& dir) override {
        if (auto ec = step("sync_dir")) return ec;
        durable_dirs_[dir] = dirs_.at(dir);
        return {};
    }
    std::error_code make_dir(const std::string& dir) override {
        dirs_.try_emplace(dir);
        durable_dirs_.try_emplace(dir);
        return {};
    }
    std::error_code set_mtime(const std::string&, std::int64_t) override { return {}; }
    std::vector<Entry> list(const std::string& dir, std::error_code& ec) override {
        std::vector<Entry> out;
        auto d = dirs_.find(dir);
        if (d == dirs_.end()) {
            ec = std::make_error_code(std::errc::no_such_file_or_directory);
            return out;
        }
        for (const auto& [name, id] : d->second)
            out.push_back({name, inodes_.at(id).content.size(), 0});
        return out;
    }

  private:
    struct Inode {
        std::string content;
        std::string durable;
    };
    class FakeWriter final : public Writer {
      public:
        FakeWriter(FaultSpoolFiles& fs, int id) : fs_(fs), id_(id) {}
        std::error_code write(std::string_view bytes) override {
            if (auto ec = fs_.step("write")) return ec;
            fs_.inodes_.at(id_).content += bytes;
            return {};
        }
        std::error_code sync() override {
            if (auto ec = fs_.step("sync")) return ec;
            auto& inode = fs_.inodes_.at(id_);
            inode.durable = inode.content;
            return {};
        }

      private:
        FaultSpoolFiles& fs_;
        int id_;
    };
    class FakeReader final : public Reader {
      public:
        explicit FakeReader(std::string content) : content_(std::move(content)) {}
        std::uint64_t size() const override { return content_.size(); }
        bool read_at(std::uint64_t offset, std::size_t n, std::string& out) const override {
            if (offset > content_.size()) return false;
            out = content_.substr(offset, n);
            return true;
        }

      private:
        std::string content_;
    };

    static std::pair<std::string, std::string> split(const std::string& path) {
        auto slash = path.rfind('/');
        return {path.substr(0, slash), path.substr(slash + 1)};
    }
    std::error_code step(const std::string& op) {
        ++operations_;
        if (crash_budget_) {
            if (*crash_budget_ <= 0) return std::make_error_code(std::errc::io_error);
            --*crash_budget_;
        }
        auto it = failures_.find(op);
        if (it != failures_.end()) {
            auto error = it->second;
            failures_.erase(it);
            return std::make_error_code(error);
        }
        return {};
    }

    std::map<std::string, std::map<std::string, int>> dirs_, durable_dirs_;
    std::map<int, Inode> inodes_;
    int next_inode_ = 0;
    int operations_ = 0;
    std::optional<int> crash_budget_;
    std::map<std::string, std::errc> failures_;
};

}  // namespace smtplb::testing
