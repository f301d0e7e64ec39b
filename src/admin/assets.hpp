#pragma once
#include <string_view>

namespace smtplb::admin {

// A file of the dashboard, compiled into the binary (cmake/Embed.cmake).
struct Asset {
    std::string_view url;
    std::string_view content_type;
    std::string_view body;
};

const Asset* find_asset(std::string_view url);

}  // namespace smtplb::admin
