#include "io/tracking_log.hpp"

#include "mocks/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace smtplb::io {
namespace {

namespace fs = std::filesystem;

using TempDir = smtplb::test_support::TempDir;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    for (auto nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
        lines.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    EXPECT_EQ(start, text.size()) << "the file ends inside a line";
    return lines;
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    ::stat(path.c_str(), &st);
    return st.st_mode & 07777;
}

TEST(TrackingLog, EachLineIsInTheFileAtOnceAndANewFileIs0640) {
    TempDir dir{"tracking-log-test"};
    auto path = dir.file("t.jsonl");
    auto old_umask = ::umask(022);
    TrackingLog log(path);
    ::umask(old_umask);
    ASSERT_TRUE(log.enabled()) << log.error();
    log.write("{\"n\":1}");
    // Nothing buffered: in the file before anything else happens.
    EXPECT_EQ(slurp(path), "{\"n\":1}\n");
    log.write("{\"n\":2}");
    EXPECT_EQ(slurp(path), "{\"n\":1}\n{\"n\":2}\n");
    EXPECT_EQ(mode_of(path), 0640u);
}

TEST(TrackingLog, AnExistingFileKeepsItsModeAndAHalfLineIsEnded) {
    TempDir dir{"tracking-log-test"};
    auto path = dir.file("t.jsonl");
    {
        std::ofstream out(path);
        out << "{\"whole\":1}\n{\"torn";
    }
    ::chmod(path.c_str(), 0600);
    TrackingLog log(path);
    log.write("{\"next\":1}");
    EXPECT_EQ(slurp(path), "{\"whole\":1}\n{\"torn\n{\"next\":1}\n");
    EXPECT_EQ(mode_of(path), 0600u);
}

TEST(TrackingLog, ReopenAfterARenameWritesToTheNewFile) {
    TempDir dir{"tracking-log-test"};
    auto path = dir.file("t.jsonl");
    TrackingLog log(path);
    log.write("before");
    fs::rename(path, path + ".1");
    log.write("still the old file");
    std::string error;
    ASSERT_TRUE(log.reopen(error)) << error;
    log.write("after");
    EXPECT_EQ(slurp(path + ".1"), "before\nstill the old file\n");
    EXPECT_EQ(slurp(path), "after\n");
    EXPECT_EQ(log.reopens(), 1u);
}

TEST(TrackingLog, AFailedReopenKeepsTheOldFile) {
    TempDir dir{"tracking-log-test"};
    auto path = dir.file("sub/t.jsonl");
    fs::create_directory(dir.file("sub"));
    TrackingLog log(path);
    fs::rename(dir.file("sub"), dir.file("moved"));
    std::string error;
    EXPECT_FALSE(log.reopen(error));
    EXPECT_NE(error.find("cannot open tracking log"), std::string::npos) << error;
    log.write("kept");
    EXPECT_EQ(slurp(dir.file("moved/t.jsonl")), "kept\n");
}

// Writers on several threads (as on several event loops) and a rotation in
// the middle: every line whole, in exactly one of the two files.
TEST(TrackingLog, ConcurrentWritersAndAReopenSplitNothing) {
    TempDir dir{"tracking-log-test"};
    auto path = dir.file("t.jsonl");
    TrackingLog log(path);
    constexpr int kThreads = 4, kLines = 3000;
    std::vector<std::thread> writers;
    for (int t = 0; t < kThreads; ++t)
        writers.emplace_back([&log, t] {
            for (int i = 0; i < kLines; ++i)
                log.write("{\"thread\":" + std::to_string(t) + ",\"line\":" + std::to_string(i) +
                          ",\"pad\":\"" + std::string(200 + i % 300, 'x') + "\"}");
        });
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    fs::rename(path, path + ".1");
    std::string error;
    ASSERT_TRUE(log.reopen(error)) << error;
    for (auto& w : writers)
        w.join();
    auto lines = lines_of(slurp(path + ".1"));
    auto more = lines_of(slurp(path));
    lines.insert(lines.end(), more.begin(), more.end());
    ASSERT_EQ(lines.size(), std::size_t(kThreads * kLines));
    std::vector<std::vector<int>> seen(kThreads, std::vector<int>(kLines, 0));
    for (const auto& line : lines) {
        int t = -1, i = -1;
        ASSERT_EQ(std::sscanf(line.c_str(), "{\"thread\":%d,\"line\":%d,", &t, &i), 2) << line;
        ASSERT_EQ(line.size(), line.find("\"pad\":\"") + 7 + 200 + i % 300 + 2) << line;
        ++seen[t][i];
    }
    for (const auto& per_thread : seen)
        for (int n : per_thread)
            ASSERT_EQ(n, 1);
}

TEST(TrackingLog, FailedWritesAreCountedAndReportedAtMostOnceAMinute) {
    TrackingLog log("/dev/full");
    ASSERT_TRUE(log.enabled()) << log.error();
    std::vector<std::string> reports;
    log.set_event_log([&](const std::string& line) { reports.push_back(line); });
    for (int i = 0; i < 100; ++i)
        log.write("{\"lost\":true}");
    EXPECT_EQ(log.write_failures(), 100u);
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(reports[0].find("event=tracking_log_write_failed"), std::string::npos);
}

// A disk that fills in the middle of a line leaves a fragment: the next
// record must not be glued onto it (a file size limit stands for the disk).
TEST(TrackingLog, ALineCutByAFullDiskIsNotContinuedByTheNext) {
    TempDir dir{"tracking-log-test"};
    TrackingLog log(dir.file("t.jsonl"));
    ASSERT_TRUE(log.enabled()) << log.error();
    log.write("{\"n\":1}");
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit small = saved;
    small.rlim_cur = fs::file_size(dir.file("t.jsonl")) + 10;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    log.write("{\"n\":2,\"padding\":\"" + std::string(100, 'x') + "\"}");
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &saved), 0);
    std::signal(SIGXFSZ, old_handler);
    EXPECT_EQ(log.write_failures(), 1u);
    log.write("{\"n\":3}");
    auto lines = lines_of(slurp(dir.file("t.jsonl")));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0], "{\"n\":1}");
    EXPECT_EQ(lines[1], "{\"n\":2,\"pa");  // the fragment (10 bytes), alone on its line
    EXPECT_EQ(lines[2], "{\"n\":3}");
}

TEST(TrackingLog, EmptyPathIsOffAndAMissingDirectoryIsAnError) {
    TrackingLog off("");
    EXPECT_FALSE(off.enabled());
    off.write("nothing");
    std::string error;
    EXPECT_TRUE(off.reopen(error));
    TrackingLog bad("/nonexistent-dir/t.jsonl");
    EXPECT_FALSE(bad.enabled());
    EXPECT_NE(bad.error().find("/nonexistent-dir/t.jsonl"), std::string::npos);
}

}  // namespace
}  // namespace smtplb::io
