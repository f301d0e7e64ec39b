#pragma once
#include <chrono>
#include <optional>
#include <string>

namespace smtplb::app {

// The systemd notify protocol (sd_notify(3)), which is one datagram to the
// socket named by $NOTIFY_SOCKET; a no-op when that is unset. Ten lines of
// our own rather than a dependency on libsystemd.
bool notify_systemd(const std::string& state);

// $WATCHDOG_USEC, when systemd asks this process for keep-alives.
std::optional<std::chrono::microseconds> systemd_watchdog_interval();

}  // namespace smtplb::app
