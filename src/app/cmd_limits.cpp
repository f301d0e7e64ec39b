#include <boost/json.hpp>

#include <cctype>
#include <cstdio>
#include <iostream>

#include "admin/limits_api.hpp"
#include "admin/limits_text.hpp"
#include "admin_call.hpp"
#include "commands.hpp"

namespace smtplb::app {
namespace json = boost::json;

namespace {

// A query parameter's value: everything but unreserved characters %-escaped.
std::string url_encode(const std::string& value) {
    static const char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : value) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '@') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

}  // namespace

int run_limits_command(const AdminOptions& options, const LimitsOptions& limits) {
    if (limits.top < 1 || static_cast<std::size_t>(limits.top) > admin::kMaxTop) {
        std::cerr << "smtplb limits: --top must be a number from 1 to " << admin::kMaxTop << "\n";
        return 64;
    }
    if (!limits.key.empty() && limits.top_given) {
        std::cerr << "smtplb limits: --top lists keys: it does not go with --key\n";
        return 64;
    }
    std::string path = "/api/v1/limits?";
    if (!limits.key.empty())
        path += "key=" + url_encode(limits.key);
    else
        path += "top=" + std::to_string(limits.top);
    if (!limits.limit.empty()) path += "&limit=" + url_encode(limits.limit);
    int status = 0;
    auto result = call(options, "limits", "GET", path, status);
    if (!result) return status;
    return show_answer(*result, options, "limits", [&](const json::value& doc) {
        const auto& root = doc.as_object();
        if (!limits.key.empty())
            std::cout << admin::format_key_states(root);
        else
            std::cout << admin::format_limits(root.at("limits").as_array());
    });
}

}  // namespace smtplb::app
