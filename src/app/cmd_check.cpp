#include <iostream>

#include "commands.hpp"
#include "config/describe.hpp"
#include "config/loader.hpp"
#include "io/runtime/tls.hpp"

namespace smtplb::app {
namespace {

// Certificates and keys are only known to be usable once OpenSSL has
// loaded them, which the config layer cannot do: the same check as at start.
bool check_tls(const config::Config& config, const std::string& path) {
    bool ok = true;
    for (const auto& l : config.listeners) {
        if (!l.tls.enabled()) continue;
        std::string error;
        if (!io::make_server_tls(l.tls, error)) {
            std::cerr << path << ": error: listener " << l.name << ": tls: " << error << "\n";
            ok = false;
        }
    }
    if (const auto& admin = config.server.admin_tls; admin.enabled()) {
        std::string error;
        if (!io::make_server_tls(admin, error)) {
            std::cerr << path << ":" << config.server.admin_tls_line
                      << ": error: server.admin_tls: " << error << "\n";
            ok = false;
        }
    }
    io::BackendTlsContexts backends;
    std::string error;
    if (!backends.build(config, error)) {
        std::cerr << path << ": error: " << error << "\n";
        ok = false;
    }
    return ok;
}

}  // namespace

int check_config(const std::string& path) {
    auto result = config::load_file(path);
    std::cerr << result.diagnostics.format(path);
    if (!result.config || !check_tls(*result.config, path)) {
        std::cerr << path << ": configuration is not valid\n";
        return 1;
    }
    std::cout << config::describe(*result.config);
    return 0;
}

}  // namespace smtplb::app
