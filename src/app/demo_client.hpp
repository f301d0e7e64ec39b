#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "io/asio.hpp"

namespace smtplb::app {

struct DemoTraffic {
    int messages = 300;
    std::string helo = "app.example.com";
    std::string from = "newsletter@example.com";
    std::string to = "user@example.net";
};

struct DemoOutcome {
    int accepted = 0;
    int refused = 0;
    std::string error;
};

// Sends messages over one connection, as a busy application or filtering
// appliance would; calls progress after each message.
io::awaitable<DemoOutcome> send_over_one_connection(std::uint16_t port, DemoTraffic traffic,
                                                    std::function<void(int)> progress);

}  // namespace smtplb::app
