#include "base/log_line.hpp"

#include <unistd.h>

#include <cerrno>

namespace smtplb::base {

void write_line(int fd, std::string_view text) {
    if (text.empty()) return;
    std::string whole;
    if (text.back() != '\n') {
        whole.reserve(text.size() + 1);
        whole.append(text).push_back('\n');
        text = whole;
    }
    // One write in practice; a short write (a line longer than a pipe
    // takes at once, a signal) goes on from where it stopped.
    while (!text.empty()) {
        ssize_t n = ::write(fd, text.data(), text.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

void log_line(std::string_view line) {
    std::string whole;
    whole.reserve(line.size() + 9);
    whole.append("smtplb: ").append(line);
    write_line(STDERR_FILENO, whole);
}

}  // namespace smtplb::base
