#include "config/table_reader.hpp"

#include <algorithm>

#include "base/text.hpp"
#include "base/units.hpp"

namespace smtplb::config {

std::string Diagnostics::format(const std::string& source) const {
    std::string out;
    for (const auto& d : items) {
        out += source;
        if (d.line > 0) out += ":" + std::to_string(d.line);
        out += d.severity == Diagnostic::Severity::Error ? ": error: " : ": warning: ";
        if (!d.path.empty()) out += d.path + ": ";
        out += d.message + "\n";
    }
    return out;
}

TableReader::TableReader(const toml::table& table, std::string path, Diagnostics& diags)
    : table_(table), path_(std::move(path)), diags_(diags) {}

TableReader::~TableReader() {
    for (auto&& [key, value] : table_) {
        std::string name(key.str());
        if (read_.count(name)) continue;
        std::string message = "unknown key";
        // The nearest key this table has, when a typo or two away.
        const std::string* nearest = nullptr;
        std::size_t best = std::min<std::size_t>(2, name.size() / 3);
        for (const auto& known : read_) {
            auto d = base::edit_distance(name, known);
            if (d <= best && (!nearest || d < best)) {
                nearest = &known;
                best = d;
            }
        }
        if (nearest) message += "; did you mean \"" + *nearest + "\"?";
        diags_.error(key_path(name), static_cast<int>(value.source().begin.line), message);
    }
}

const toml::node* TableReader::node(const std::string& key) {
    read_.insert(key);
    return table_.get(key);
}

int TableReader::line_of(const std::string& key) const {
    auto* n = table_.get(key);
    if (n) return static_cast<int>(n->source().begin.line);
    return static_cast<int>(table_.source().begin.line);
}

void TableReader::wrong_type(const std::string& key, const std::string& expected) {
    diags_.error(key_path(key), line_of(key), "must be " + expected);
}

void TableReader::string(const std::string& key, std::string& out, bool required) {
    auto* n = node(key);
    if (!n) {
        if (required) diags_.error(key_path(key), line_of(key), "is required");
        return;
    }
    if (auto v = n->value<std::string>()) {
        out = *v;
        if (required && out.empty()) diags_.error(key_path(key), line_of(key), "must not be empty");
    } else {
        wrong_type(key, "a string");
    }
}

void TableReader::integer(const std::string& key, std::uint32_t& out, std::uint32_t min,
                          std::uint32_t max) {
    auto* n = node(key);
    if (!n) return;
    auto v = n->value<std::int64_t>();
    if (!n->is_integer() || !v) return wrong_type(key, "an integer");
    if (*v < static_cast<std::int64_t>(min) || *v > static_cast<std::int64_t>(max)) {
        diags_.error(key_path(key), line_of(key),
                     "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                         ", not " + std::to_string(*v));
        return;
    }
    out = static_cast<std::uint32_t>(*v);
}

void TableReader::size(const std::string& key, std::uint64_t& out, std::uint64_t min,
                       std::uint64_t max) {
    auto* n = node(key);
    if (!n) return;
    std::optional<std::uint64_t> bytes;
    if (n->is_integer()) {
        auto v = n->value<std::int64_t>();
        if (v && *v >= 0) bytes = static_cast<std::uint64_t>(*v);
    } else if (auto s = n->value<std::string>()) {
        bytes = base::parse_size(*s);
    }
    if (!bytes) return wrong_type(key, "a size such as \"50MiB\" or a number of bytes");
    if (*bytes < min || *bytes > max) {
        diags_.error(key_path(key), line_of(key),
                     "must be between " + base::format_size(min) + " and " +
                         base::format_size(max) + ", not " + base::format_size(*bytes));
        return;
    }
    out = *bytes;
}

void TableReader::duration(const std::string& key, std::chrono::milliseconds& out,
                           std::chrono::milliseconds min, std::chrono::milliseconds max) {
    auto* n = node(key);
    if (!n) return;
    auto s = n->value<std::string>();
    std::optional<std::chrono::milliseconds> d;
    if (s && !n->is_integer()) d = base::parse_duration(*s);
    if (!d) return wrong_type(key, "a duration such as \"250ms\", \"5s\", \"10m\" or \"1h\"");
    if (*d < min || *d > max) {
        diags_.error(key_path(key), line_of(key),
                     "must be between " + base::format_duration(min) + " and " +
                         base::format_duration(max) + ", not " + base::format_duration(*d));
        return;
    }
    out = *d;
}

void TableReader::boolean(const std::string& key, bool& out) {
    auto* n = node(key);
    if (!n) return;
    if (!n->is_boolean()) return wrong_type(key, "true or false");
    out = *n->value<bool>();
}

void TableReader::strings(const std::string& key, std::vector<std::string>& out) {
    auto* n = node(key);
    if (!n) return;
    auto* arr = n->as_array();
    if (!arr) return wrong_type(key, "an array of strings");
    out.clear();
    for (const auto& item : *arr) {
        auto v = item.value<std::string>();
        if (!item.is_string() || !v) return wrong_type(key, "an array of strings");
        out.push_back(*v);
    }
}

std::vector<const toml::table*> TableReader::tables(const std::string& key) {
    std::vector<const toml::table*> out;
    auto* n = node(key);
    if (!n) return out;
    auto* arr = n->as_array();
    if (!arr) {
        wrong_type(key, "an array of tables ([[" + key + "]])");
        return out;
    }
    for (const auto& item : *arr) {
        if (auto* t = item.as_table())
            out.push_back(t);
        else
            wrong_type(key, "an array of tables");
    }
    return out;
}

const toml::table* TableReader::table(const std::string& key) {
    auto* n = node(key);
    if (!n) return nullptr;
    if (auto* t = n->as_table()) return t;
    wrong_type(key, "a table");
    return nullptr;
}

}  // namespace smtplb::config
