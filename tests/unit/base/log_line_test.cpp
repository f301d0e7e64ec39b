#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "base/log_line.hpp"

using namespace smtplb;

namespace {

// A line that says how it must look: "T<thread> <n> <len> " then `len`
// copies of the thread's letter. Lengths vary up to 1 KB.
std::string make_line(int thread, int n) {
    std::size_t len = 1 + (static_cast<std::size_t>(n) * 37 + thread * 11) % 1000;
    std::string line =
        "T" + std::to_string(thread) + " " + std::to_string(n) + " " + std::to_string(len) + " ";
    line.append(len, static_cast<char>('a' + thread));
    return line;
}

bool whole(const std::string& line, std::vector<int>& next) {
    int thread = 0, n = 0;
    std::size_t len = 0;
    int used = 0;
    if (std::sscanf(line.c_str(), "T%d %d %zu %n", &thread, &n, &len, &used) != 3) return false;
    if (thread < 0 || thread >= static_cast<int>(next.size())) return false;
    if (line != make_line(thread, n) || line.size() != used + len) return false;
    if (n != next[thread]) return false;  // each thread's lines in order, none lost
    ++next[thread];
    return true;
}

}  // namespace

// Two threads log many lines at once into a pipe, as two event loops do
// into stderr under systemd: every line comes out whole, none lost.
TEST(LogLine, ConcurrentLinesComeOutWhole) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    constexpr int kThreads = 2, kLines = 5000;
    std::string received;
    std::thread reader([&] {
        char buffer[65536];
        for (;;) {
            ssize_t n = ::read(fds[0], buffer, sizeof buffer);
            if (n <= 0) break;
            received.append(buffer, static_cast<std::size_t>(n));
        }
    });
    std::vector<std::thread> writers;
    for (int t = 0; t < kThreads; ++t)
        writers.emplace_back([t, fd = fds[1]] {
            for (int i = 0; i < kLines; ++i)
                base::write_line(fd, make_line(t, i));
        });
    for (auto& w : writers)
        w.join();
    ::close(fds[1]);
    reader.join();
    ::close(fds[0]);

    std::vector<int> next(kThreads, 0);
    std::size_t lines = 0, start = 0, broken = 0;
    for (std::size_t end; (end = received.find('\n', start)) != std::string::npos;
         start = end + 1) {
        ++lines;
        if (!whole(received.substr(start, end - start), next) && ++broken <= 3)
            ADD_FAILURE() << "line " << lines << " is not whole: "
                          << received.substr(start, std::min<std::size_t>(end - start, 80));
    }
    EXPECT_EQ(start, received.size()) << "a partial line at the end";
    EXPECT_EQ(lines, std::size_t{kThreads * kLines});
    EXPECT_EQ(broken, 0u);
    for (int t = 0; t < kThreads; ++t)
        EXPECT_EQ(next[t], kLines) << "thread " << t;
}

TEST(LogLine, AddsOneNewlineOnlyWhenMissing) {
    char path[] = "/tmp/smtplb-log-line-XXXXXX";
    int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    base::write_line(fd, "one");
    base::write_line(fd, "two\n");
    base::write_line(fd, "");  // nothing, not an empty line
    base::write_line(fd, "three\nfour");
    std::string text(64, '\0');
    ::lseek(fd, 0, SEEK_SET);
    text.resize(static_cast<std::size_t>(::read(fd, text.data(), text.size())));
    ::close(fd);
    ::unlink(path);
    EXPECT_EQ(text, "one\ntwo\nthree\nfour\n");
}

TEST(LogLine, TimestampIsRfc3339UtcWithMilliseconds) {
    using namespace std::chrono;
    // 2026-12-03T15:04:05.123Z
    sys_time<milliseconds> t =
        sys_days{year{2026} / 12 / 3} + hours{15} + minutes{4} + seconds{5} + milliseconds{123};
    EXPECT_EQ(base::rfc3339_millis(t), "2026-12-03T15:04:05.123Z");
    EXPECT_EQ(base::rfc3339_millis(sys_days{year{1970} / 1 / 1}), "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(base::rfc3339_millis(sys_days{year{2024} / 2 / 29} + milliseconds{7}),
              "2024-02-29T00:00:00.007Z");
}

TEST(LogLine, TimestampAndLevelComeFirst) {
    using namespace std::chrono;
    sys_time<milliseconds> t = sys_days{year{2026} / 1 / 2} + milliseconds{45};
    EXPECT_EQ(base::format_log_line(t, base::LogLevel::Warn, "event=x a=b"),
              "ts=2026-01-02T00:00:00.045Z level=warn event=x a=b");
    EXPECT_EQ(base::format_log_line(t, base::LogLevel::Info, ""),
              "ts=2026-01-02T00:00:00.045Z level=info");
}

TEST(LogLine, LevelFollowsTheEvent) {
    using base::LogLevel;
    EXPECT_EQ(base::level_of("event=listening listener=a"), LogLevel::Info);
    EXPECT_EQ(base::level_of("event=reloaded"), LogLevel::Info);
    EXPECT_EQ(base::level_of("event=reload_refused file=x"), LogLevel::Warn);
    EXPECT_EQ(base::level_of("event=spool_commit_failed stage=x"), LogLevel::Error);
    EXPECT_EQ(base::level_of("event=start_failed"), LogLevel::Error);
    EXPECT_EQ(base::level_of("event=health pool=p backend=b from=up to=down"), LogLevel::Warn);
    EXPECT_EQ(base::level_of("event=health pool=p backend=b from=down to=up"), LogLevel::Info);
    EXPECT_EQ(base::level_of("event=dsn_relayed_notice pool=p recipients=1 result=not_sent"),
              LogLevel::Warn);
    EXPECT_EQ(base::level_of("event=dsn_relayed_notice id=1 recipients=1 result=spooled"),
              LogLevel::Info);
    // A prefix of a known name is another event.
    EXPECT_EQ(base::level_of("event=reload_refusedx"), LogLevel::Info);
    EXPECT_EQ(base::level_of("no event"), LogLevel::Info);
}
