#include "config/route_pattern.hpp"

namespace smtplb::config {

std::unique_ptr<re2::RE2> compile_route_pattern(const std::string& pattern) {
    re2::RE2::Options options;
    options.set_case_sensitive(false);
    options.set_log_errors(false);  // the loader reports them, with the key and line
    return std::make_unique<re2::RE2>(pattern, options);
}

}  // namespace smtplb::config
