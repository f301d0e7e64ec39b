#include <iostream>

#include "commands.hpp"

namespace smtplb::app {

int run_sink(const tools::SinkOptions& options) {
    io::asio::io_context io(1);
    tools::Sink sink(io, options);
    std::string error;
    if (!sink.start(error)) {
        std::cerr << "smtplb sink: " << error << "\n";
        return 1;
    }
    std::cerr << "smtplb sink: listening on port " << sink.port() << "\n";
    io::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const io::error_code&, int) { io.stop(); });
    ::signal(SIGPIPE, SIG_IGN);
    io.run();
    const auto& s = sink.stats();
    std::cout << "{\"connections\":" << s.connections << ",\"messages\":" << s.messages
              << ",\"recipients\":" << s.recipients << ",\"bytes\":" << s.bytes
              << ",\"faults\":" << s.faults << "}" << std::endl;
    return 0;
}

}  // namespace smtplb::app
