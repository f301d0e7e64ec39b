#include <iostream>

#include "commands.hpp"
#include "config/describe.hpp"
#include "config/loader.hpp"

namespace smtplb::app {

int check_config(const std::string& path) {
    auto result = config::load_file(path);
    std::cerr << result.diagnostics.format(path);
    if (!result.config) {
        std::cerr << path << ": configuration is not valid\n";
        return 1;
    }
    std::cout << config::describe(*result.config);
    return 0;
}

}  // namespace smtplb::app
