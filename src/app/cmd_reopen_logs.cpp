// `smtplb reopen-logs`: a running daemon opens its tracking log again, after
// logrotate (or an operator) renamed it. Finds the daemon as `smtplb reload`
// does (--admin, else the configuration's admin address), or signals a
// process id with SIGUSR1 when there is no admin API.
#include <signal.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "admin_call.hpp"
#include "commands.hpp"

namespace smtplb::app {

int run_reopen_logs_command(const AdminOptions& options, long pid) {
    if (pid != 0) {
        if (pid < 2 || ::kill(static_cast<pid_t>(pid), SIGUSR1) != 0) {
            std::cerr << "smtplb reopen-logs: cannot signal process " << pid << ": "
                      << (pid < 2 ? "not a daemon's process id" : std::strerror(errno)) << "\n";
            return 1;
        }
        std::cout << "sent SIGUSR1 to " << pid << "\n";
        return 0;
    }
    int status = 0;
    auto result = call(options, "reopen-logs", "POST", "/api/v1/reopen-logs", status);
    if (!result) return status == 0 ? 1 : status;
    auto message = field_or_body(result->body, "message");
    if (result->status != 200 && message == result->body)
        message = field_or_body(result->body, "error");
    (result->status == 200 ? std::cout : std::cerr)
        << (result->status == 200 ? "" : "smtplb reopen-logs: ") << message
        << (message.ends_with('\n') ? "" : "\n");
    return result->status == 200 ? 0 : 1;
}

}  // namespace smtplb::app
