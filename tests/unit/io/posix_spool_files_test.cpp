#include "io/spool/posix_spool_files.hpp"

#include "mocks/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace smtplb::io {
namespace {

namespace fs = std::filesystem;

using TempDir = smtplb::test_support::TempDir;

std::string name_of(int n) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%016X", n);
    return buf;
}

// Enough files that the inodes are read by several threads: every regular
// file is listed once, with its own size and modification time; a
// directory among them is not.
TEST(PosixSpoolFiles, ListsEveryFileWithItsSizeAndTimeAcrossThreads) {
    TempDir dir{"posix-spool-files-test"};
    constexpr int kFiles = 40000;  // > 4 × 8192: four threads
    for (int n = 0; n < kFiles; ++n)
        std::ofstream(dir.path + "/" + name_of(n))
            << std::string(static_cast<std::size_t>(n % 97), 'x');
    fs::create_directory(dir.path + "/not-a-file");
    PosixSpoolFiles files;
    const std::int64_t stamp_ms = 1'700'000'000'123;
    ASSERT_FALSE(files.set_mtime(dir.path + "/" + name_of(12345), stamp_ms));

    std::error_code ec;
    auto entries = files.list(dir.path, ec);
    ASSERT_FALSE(ec);
    ASSERT_EQ(entries.size(), static_cast<std::size_t>(kFiles));
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    for (int n = 0; n < kFiles; ++n) {
        ASSERT_EQ(entries[static_cast<std::size_t>(n)].name, name_of(n));
        ASSERT_EQ(entries[static_cast<std::size_t>(n)].size, static_cast<std::uint64_t>(n % 97));
    }
    EXPECT_EQ(entries[12345].mtime_ms, stamp_ms);
}

TEST(PosixSpoolFiles, ListOfAMissingDirectoryIsAnError) {
    PosixSpoolFiles files;
    std::error_code ec;
    auto entries = files.list("/nonexistent/spool/queue", ec);
    EXPECT_TRUE(ec);
    EXPECT_TRUE(entries.empty());
}

}  // namespace
}  // namespace smtplb::io
