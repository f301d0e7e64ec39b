#include <unistd.h>

#include <iostream>

#include "check_environment.hpp"
#include "commands.hpp"
#include "config/describe.hpp"
#include "config/loader.hpp"
#include "transparent_privilege.hpp"

namespace smtplb::app {

// Exit status 1 on any error (what `run` would refuse), 0 otherwise, with
// or without warnings. Findings go to stderr as "FILE:LINE: error: KEY:
// message"; the effective configuration to stdout unless quiet.
int check_config(const std::string& path, const CheckOptions& options) {
    auto result = config::load_file(path);
    auto& diagnostics = result.diagnostics;
    if (result.config) {
        check_environment(*result.config, result.lines, options.user, diagnostics);
        check_transparent_privilege(*result.config, result.lines, has_net_admin(), false,
                                    diagnostics);
    }
    std::cerr << diagnostics.format(path);
    if (diagnostics.has_errors()) {
        if (!options.quiet) std::cerr << path << ": configuration is not valid\n";
        return 1;
    }
    if (options.quiet) return 0;
    if (options.user.empty() && ::geteuid() == 0)
        std::cerr << path
                  << ": note: directories were checked as root; the packaged service runs "
                     "as user smtplb (check with --user smtplb)\n";
    std::cout << config::describe(*result.config);
    return 0;
}

}  // namespace smtplb::app
