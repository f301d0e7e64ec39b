#include "config/key_lines.hpp"

namespace smtplb::config {

KeyLines::KeyLines(const toml::table& root) {
    for (auto&& [key, value] : root)
        add(value, std::string(key.str()));
}

void KeyLines::add(const toml::node& node, const std::string& path) {
    lines_[path] = static_cast<int>(node.source().begin.line);
    if (const auto* table = node.as_table()) {
        for (auto&& [key, value] : *table)
            add(value, path + "." + std::string(key.str()));
    } else if (const auto* array = node.as_array()) {
        // Arrays of tables ([[listener]]) are indexed; plain arrays are one key.
        for (std::size_t i = 0; i < array->size(); ++i)
            if (const auto* item = array->get(i); item && item->is_table())
                add(*item, path + "[" + std::to_string(i) + "]");
    }
}

int KeyLines::line(const std::string& path) const {
    for (std::string p = path; !p.empty();) {
        if (auto it = lines_.find(p); it != lines_.end() && it->second > 0) return it->second;
        auto cut = p.find_last_of(".[");
        if (cut == std::string::npos) break;
        p.erase(cut);
    }
    return 0;
}

}  // namespace smtplb::config
